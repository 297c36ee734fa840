/** The small HTTP servers of the node proxy (admin, metrics, readiness): listen, log the bound address, close. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AmbitError, errorCode } from '../errors.js';
import type { RuntimeErrorCode } from './errors.js';
import { formatListenAddress, type ListenAddress } from './listen-address.js';
import { logger } from './log.js';

const log = logger('ztunnel::admin');

export type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export function reply(res: ServerResponse, status: number, body: string, type = 'text/plain'): void {
  res.writeHead(status, {
    'content-type': `${type}; charset=utf-8`,
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

export interface HttpServer {
  readonly server: Server;
  /** The bound address (port 0 resolved). */
  readonly address: ListenAddress;
  close(): Promise<void>;
}

/** Listens on `addr`; a taken port rejects with the errno code and the server's name. */
export function serveHttp(name: string, addr: ListenAddress, handler: Handler): Promise<HttpServer> {
  const server = createServer((req, res) => {
    Promise.resolve(handler(req, res)).catch((err: Error) => {
      if (!res.headersSent) reply(res, 500, `${err.message}\n`);
      else res.destroy();
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err) => {
      const code = errorCode(err) ?? ('ERR_LISTEN' satisfies RuntimeErrorCode);
      // Forwards the errno code (EADDRINUSE, ...): not one of ours, so a plain AmbitError.
      reject(
        new AmbitError(code, `cannot serve ${name} on ${formatListenAddress(addr)}: ${code}`, { cause: err }),
      );
    });
    server.listen({ host: addr.host, port: addr.port, ipv6Only: false }, () => {
      const bound = server.address() as AddressInfo;
      const address = { host: bound.address, port: bound.port };
      log.info(`serving ${name}`, { address: formatListenAddress(address) });
      resolve({
        server,
        address,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
