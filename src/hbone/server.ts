/**
 * The HTTP/2 side of an HBONE listener: serves verified mTLS sockets and hands each stream, with the
 * peer identity and the address the connection arrived on, to a handler. Per-stream policy lives in
 * the handler (the ztunnel inbound path).
 */
import http2, {
  type Http2Server,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type tls from 'node:tls';
import { AmbitError } from '../errors.js';
import type { SpiffeId } from '../identity/spiffe.js';
import { unmapIPv4 } from '../sys/index.js';
import { CONNECTION_WINDOW, type KeepaliveOptions, serverSettings, startKeepalive } from './settings.js';

export interface HboneConnectionInfo {
  peer: SpiffeId;
  /** The local IP the TCP connection arrived on (the pod IP the client dialled). */
  localIp: string;
  remoteIp: string;
  remotePort: number;
}

export type HboneStreamHandler = (
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  connection: HboneConnectionInfo,
) => void;

export class HboneH2Server {
  readonly #server: Http2Server;
  readonly #sessions = new Map<ServerHttp2Session, HboneConnectionInfo>();
  #pending: HboneConnectionInfo | undefined;

  constructor(handler: HboneStreamHandler, options: { keepalive?: KeepaliveOptions } = {}) {
    this.#server = http2.createServer({ settings: serverSettings(), maxSessionMemory: 64 });
    // 'session' fires synchronously inside the 'connection' emit below, so #pending is that socket's info.
    this.#server.on('session', (session) => {
      const info = this.#pending;
      if (!info) {
        session.destroy();
        return;
      }
      this.#sessions.set(session, info);
      session.on('error', () => {});
      session.once('close', () => this.#sessions.delete(session));
      session.once('connect', () => session.setLocalWindowSize(CONNECTION_WINDOW));
      startKeepalive(session, options.keepalive);
    });
    this.#server.on('stream', (stream, headers) => {
      const info = this.#sessions.get(stream.session as ServerHttp2Session);
      stream.on('error', () => {});
      if (!info) {
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      handler(stream, headers, info);
    });
  }

  /** Starts HTTP/2 on a TLS socket whose client identity was verified. */
  serve(socket: tls.TLSSocket, peer: SpiffeId): void {
    this.#pending = {
      peer,
      localIp: unmapIPv4(socket.localAddress ?? ''),
      remoteIp: unmapIPv4(socket.remoteAddress ?? ''),
      remotePort: socket.remotePort ?? 0,
    };
    try {
      this.#server.emit('connection', socket);
    } finally {
      this.#pending = undefined;
    }
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  close(): void {
    // With an error, so open streams are reset on both ends; a plain destroy resets them with NO_ERROR.
    const closed = new AmbitError('ERR_HBONE_SERVER_CLOSED', 'the HBONE server closed');
    for (const s of this.#sessions.keys()) s.destroy(closed);
    this.#sessions.clear();
    this.#server.close();
  }
}
