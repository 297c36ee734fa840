/**
 * The server side of HBONE over node:http2: serves verified mTLS sockets and hands each stream, with
 * the peer identity and the address the connection arrived on, to a handler. Per-stream policy lives
 * in the handler (the ztunnel inbound path).
 */
import http2, { type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import type { SpiffeId } from '../../identity/spiffe.js';
import { unmapIPv4 } from '../../sys/index.js';
import { hboneError } from '../errors.js';
import { CONNECTION_WINDOW, RESET_BURST, RESET_REFILL_PER_SECOND } from '../settings.js';
import type {
  TunnelConnectionInfo,
  TunnelRequest,
  TunnelServer,
  TunnelServerOptions,
  TunnelStreamHandler,
} from '../transport.js';
import { serverSettings, startKeepalive } from './settings.js';
import { tunnelStream } from './stream.js';

/** node:http2's header values, repeated headers joined as one. */
function requestOf(headers: IncomingHttpHeaders): TunnelRequest {
  const request: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) request[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return request;
}

/** How long a session closed for abuse may take to deliver its GOAWAY before it is destroyed. */
const ABUSE_CLOSE_GRACE_MS = 1000;

/** Token bucket of client resets of unanswered streams, per session. */
class ResetBudget {
  #tokens = RESET_BURST;
  #at = Date.now();

  /** Spends one token; false once the client has reset more than the burst (net of the refill). */
  spend(): boolean {
    const now = Date.now();
    this.#tokens = Math.min(RESET_BURST, this.#tokens + ((now - this.#at) / 1000) * RESET_REFILL_PER_SECOND);
    this.#at = now;
    this.#tokens -= 1;
    return this.#tokens >= 0;
  }
}

export class H2TunnelServer implements TunnelServer {
  readonly #server: Http2Server;
  readonly #sessions = new Map<ServerHttp2Session, TunnelConnectionInfo>();
  readonly #resets = new WeakMap<ServerHttp2Session, ResetBudget>();
  #pending: { info: TunnelConnectionInfo; socket: Socket } | undefined;
  readonly #sockets = new WeakMap<ServerHttp2Session, Socket>();

  readonly #onAbuse: TunnelServerOptions['onAbuse'];

  constructor(handler: TunnelStreamHandler, options: TunnelServerOptions = {}) {
    this.#onAbuse = options.onAbuse;
    this.#server = http2.createServer({ settings: serverSettings(), maxSessionMemory: 64 });
    // 'session' fires synchronously inside the 'connection' emit below, so #pending is that socket's info.
    this.#server.on('session', (session) => {
      const pending = this.#pending;
      if (!pending) {
        session.destroy();
        return;
      }
      const { info, socket } = pending;
      this.#sessions.set(session, info);
      this.#sockets.set(session, socket);
      this.#resets.set(session, new ResetBudget());
      session.on('error', () => {});
      session.once('close', () => this.#sessions.delete(session));
      session.once('connect', () => session.setLocalWindowSize(CONNECTION_WINDOW));
      startKeepalive(session, options.keepalive);
    });
    this.#server.on('stream', (stream, headers) => {
      const session = stream.session as ServerHttp2Session;
      const info = this.#sessions.get(session);
      stream.on('error', () => {});
      if (!info) {
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      // 'aborted' with no response sent: the client reset the stream before it was answered.
      stream.once('aborted', () => {
        if (!stream.headersSent && this.#resets.get(session)?.spend() === false) this.#tooManyResets(session);
      });
      handler(tunnelStream(stream), requestOf(headers), info);
    });
  }

  serve(socket: Socket, peer: SpiffeId): void {
    this.#pending = {
      info: {
        peer,
        localIp: unmapIPv4(socket.localAddress ?? ''),
        remoteIp: unmapIPv4(socket.remoteAddress ?? ''),
        remotePort: socket.remotePort ?? 0,
      },
      socket,
    };
    try {
      this.#server.emit('connection', socket);
    } finally {
      this.#pending = undefined;
    }
  }

  /**
   * GOAWAY ENHANCE_YOUR_CALM, then close: FIN right after the GOAWAY (a close with the client's frames
   * still unread would reset the connection and could drop the GOAWAY), destroyed a moment later.
   */
  #tooManyResets(session: ServerHttp2Session): void {
    if (session.destroyed || session.closed) return;
    this.#onAbuse?.(this.#sessions.get(session), 'too many streams reset by the client (rapid reset)');
    session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    const socket = this.#sockets.get(session);
    setImmediate(() => socket?.end());
    setTimeout(() => session.destroy(), ABUSE_CLOSE_GRACE_MS).unref();
  }

  get connectionCount(): number {
    return this.#sessions.size;
  }

  /**
   * GOAWAY (NO_ERROR, last stream processed) on every session; whatever is still open when the
   * caller's drain deadline passes is cut by `close()` or by resetting the sockets.
   */
  drain(): void {
    for (const s of this.#sessions.keys()) {
      if (s.closed || s.destroyed) continue;
      s.goaway(http2.constants.NGHTTP2_NO_ERROR);
      s.close();
    }
    this.#server.close();
  }

  close(): void {
    // With an error, so open streams are reset on both ends; a plain destroy resets them with NO_ERROR.
    const closed = hboneError('ERR_HBONE_SERVER_CLOSED', 'the HBONE server closed');
    for (const s of this.#sessions.keys()) s.destroy(closed);
    this.#sessions.clear();
    this.#server.close();
  }
}
