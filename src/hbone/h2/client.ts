/**
 * The client side of HBONE over node:http2: an HTTP/2 session on a verified TLS socket, carrying
 * CONNECT streams.
 */
import { EventEmitter } from 'node:events';
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { SpiffeId } from '../../identity/spiffe.js';
import { HboneStatusError, hboneError } from '../errors.js';
import { formatAuthority } from '../headers.js';
import { CLIENT_MAX_STREAMS, CONNECTION_WINDOW } from '../settings.js';
import type {
  TunnelClientOptions,
  TunnelConnection,
  TunnelConnectionEvent,
  TunnelRequestHeaders,
  TunnelStream,
} from '../transport.js';
import { clientSettings, startKeepalive } from './settings.js';
import { tunnelStream } from './stream.js';

export class H2TunnelConnection extends EventEmitter implements TunnelConnection {
  readonly session: ClientHttp2Session;
  readonly peer: SpiffeId;
  #reserved = 0;
  #goaway = false;

  constructor(session: ClientHttp2Session, peer: SpiffeId) {
    super();
    this.session = session;
    this.peer = peer;
    session.once('goaway', () => {
      this.#goaway = true;
      this.emit('goaway' satisfies TunnelConnectionEvent);
    });
    session.once('close', () => this.emit('close' satisfies TunnelConnectionEvent));
  }

  get ready(): boolean {
    return !this.#goaway && !this.session.closed && !this.session.destroyed;
  }

  get activeStreams(): number {
    return this.#reserved;
  }

  /** The ztunnel limit, or the peer's when it advertised a lower one. */
  get maxStreams(): number {
    const peer = this.session.remoteSettings?.maxConcurrentStreams;
    return Math.min(CLIENT_MAX_STREAMS, peer && peer > 0 ? peer : CLIENT_MAX_STREAMS);
  }

  tryReserve(): boolean {
    if (!this.ready || this.#reserved >= this.maxStreams) return false;
    this.#reserved++;
    return true;
  }

  #release(): void {
    this.#reserved--;
    if (this.#reserved === 0) this.emit('idle' satisfies TunnelConnectionEvent);
  }

  connect(headers: TunnelRequestHeaders): Promise<TunnelStream> {
    return new Promise((resolve, reject) => {
      let stream: ClientHttp2Stream;
      try {
        stream = this.session.request(headers, { endStream: false });
      } catch (err) {
        this.#release();
        reject(hboneError('ERR_HBONE_STREAM', `HBONE stream could not be opened: ${(err as Error).message}`));
        return;
      }
      stream.once('close', () => this.#release());
      // REFUSED_STREAM (also what a GOAWAY gives the streams past its last id): the server did
      // nothing with the stream, so the caller may open it again on another connection.
      const refused = () =>
        stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM
          ? hboneError('ERR_HBONE_REFUSED', 'HBONE CONNECT refused by the server before it was processed')
          : undefined;
      const onError = (err: Error) => {
        stream.off('response', onResponse);
        stream.off('close', onClose);
        reject(
          refused() ?? hboneError('ERR_HBONE_STREAM', `HBONE CONNECT failed: ${err.message}`, { cause: err }),
        );
      };
      const onClose = () => onError(new Error(`stream closed before a response (code ${stream.rstCode})`));
      const onResponse = (h: http2.IncomingHttpHeaders) => {
        stream.off('error', onError);
        stream.off('close', onClose);
        const status = Number(h[':status']);
        if (status === 200) {
          resolve(tunnelStream(stream));
          return;
        }
        stream.on('error', () => {});
        stream.close(http2.constants.NGHTTP2_CANCEL);
        reject(new HboneStatusError(status, headers[':authority'] ?? ''));
      };
      stream.once('error', onError);
      stream.once('close', onClose);
      stream.once('response', onResponse);
    });
  }

  drain(): void {
    if (!this.session.closed) this.session.close();
  }

  close(): void {
    this.session.destroy();
  }
}

/** Completes the HTTP/2 preface and SETTINGS exchange on a TLS socket whose server identity was verified. */
export async function connectH2(
  socket: TLSSocket,
  peer: SpiffeId,
  o: TunnelClientOptions,
): Promise<H2TunnelConnection> {
  const session = http2.connect(`https://${formatAuthority(o.host, o.port)}`, {
    createConnection: () => socket,
    settings: clientSettings(),
    maxSessionMemory: 64,
  });
  session.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    const fail = (err?: Error) =>
      reject(
        hboneError('ERR_H2_HANDSHAKE', `HTTP/2 handshake with ${o.host} failed: ${err?.message ?? 'closed'}`),
      );
    session.once('connect', () => {
      session.off('close', fail);
      resolve();
    });
    session.once('close', fail);
  });
  session.setLocalWindowSize(CONNECTION_WINDOW);
  startKeepalive(session, o.keepalive);
  return new H2TunnelConnection(session, peer);
}
