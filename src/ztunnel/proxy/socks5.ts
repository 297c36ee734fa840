/**
 * SOCKS5 (RFC 1928) on the pod's 127.0.0.1:15080: an explicit way into the outbound path for apps
 * that cannot be captured. CONNECT only, no authentication; IPv4, IPv6 and hostnames.
 */
import { lookup } from 'node:dns/promises';
import type { Socket } from 'node:net';
import { logConnectionFailed } from './access-log.js';
import { hostPort } from './connection-info.js';
import type { PodContext } from './context.js';
import { proxyError } from './errors.js';
import { proxyOutbound } from './outbound.js';

const VERSION = 5;
const NO_AUTH = 0;
const NO_ACCEPTABLE_METHOD = 0xff;
const CMD_CONNECT = 1;
const ATYP_IPV4 = 1;
const ATYP_DOMAIN = 3;
const ATYP_IPV6 = 4;

export const REPLY = {
  succeeded: 0,
  generalFailure: 1,
  hostUnreachable: 4,
  commandNotSupported: 7,
  addressTypeNotSupported: 8,
} as const;

const HANDSHAKE_TIMEOUT_MS = 10_000;

/** Reads exactly `n` bytes, leaving anything after them in the socket's buffer for the proxy. */
function readExactly(socket: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tryRead = () => {
      const chunk = socket.read(n) as Buffer | null;
      if (chunk === null) return false;
      cleanup();
      resolve(chunk);
      return true;
    };
    const onEnd = () => {
      cleanup();
      reject(proxyError('ERR_SOCKS5', 'client closed during the SOCKS5 handshake'));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onReadable = () => void tryRead();
    const cleanup = () => {
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('error', onError);
    };
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.once('error', onError);
    tryRead();
  });
}

function reply(socket: Socket, code: number): void {
  // BND.ADDR/PORT are not meaningful for a transparent proxy: 0.0.0.0:0.
  socket.write(Buffer.from([VERSION, code, 0, ATYP_IPV4, 0, 0, 0, 0, 0, 0]));
}

function ipv6(b: Buffer): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(b.readUInt16BE(i).toString(16));
  return parts.join(':');
}

async function handshake(socket: Socket): Promise<{ address: string; port: number } | undefined> {
  const [version, methodCount] = await readExactly(socket, 2);
  if (version !== VERSION) throw proxyError('ERR_SOCKS5', `unsupported SOCKS version ${version}`);
  const methods = await readExactly(socket, methodCount ?? 0);
  if (!methods.includes(NO_AUTH)) {
    socket.end(Buffer.from([VERSION, NO_ACCEPTABLE_METHOD]));
    throw proxyError('ERR_SOCKS5', 'client offers no unauthenticated method');
  }
  socket.write(Buffer.from([VERSION, NO_AUTH]));

  const [v, cmd, , atyp] = await readExactly(socket, 4);
  if (v !== VERSION) throw proxyError('ERR_SOCKS5', `unsupported SOCKS version ${v}`);
  let address: string;
  if (atyp === ATYP_IPV4) address = [...(await readExactly(socket, 4))].join('.');
  else if (atyp === ATYP_IPV6) address = ipv6(await readExactly(socket, 16));
  else if (atyp === ATYP_DOMAIN) {
    const [len] = await readExactly(socket, 1);
    const name = (await readExactly(socket, len ?? 0)).toString('utf8');
    try {
      address = (await lookup(name)).address;
    } catch {
      reply(socket, REPLY.hostUnreachable);
      socket.end();
      throw proxyError('ERR_SOCKS5', `cannot resolve ${name}`);
    }
  } else {
    reply(socket, REPLY.addressTypeNotSupported);
    socket.end();
    throw proxyError('ERR_SOCKS5', `unsupported address type ${atyp}`);
  }
  const port = (await readExactly(socket, 2)).readUInt16BE(0);
  if (cmd !== CMD_CONNECT) {
    reply(socket, REPLY.commandNotSupported);
    socket.end();
    throw proxyError('ERR_SOCKS5', `unsupported command ${cmd}`);
  }
  return { address, port };
}

export function handleSocks5(pod: PodContext, socket: Socket): void {
  socket.setNoDelay(true);
  const timer = setTimeout(() => socket.destroy(), HANDSHAKE_TIMEOUT_MS);
  handshake(socket).then(
    (dst) => {
      clearTimeout(timer);
      if (!dst) return;
      reply(socket, REPLY.succeeded);
      proxyOutbound(pod, socket, dst);
    },
    (err: Error) => {
      clearTimeout(timer);
      logConnectionFailed(
        {
          srcAddr: hostPort(socket.remoteAddress ?? '', socket.remotePort ?? 0),
          dstAddr: '-',
          direction: 'outbound',
        },
        err.message,
      );
      if (!socket.writableEnded) socket.destroy();
    },
  );
}
