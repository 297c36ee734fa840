/**
 * One HBONE client connection: a TCP socket from the caller's connect function (a pod proxy makes it in the
 * source pod's netns, marked), mutual TLS as the source identity, and an HTTP/2 session that carries
 * CONNECT streams.
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { AmbitError } from '../errors.js';
import type { SpiffeId } from '../identity/spiffe.js';
import { type HboneErrorCode, hboneError } from './errors.js';
import { formatAuthority } from './headers.js';
import {
  CLIENT_MAX_STREAMS,
  CONNECTION_WINDOW,
  clientSettings,
  type KeepaliveOptions,
  startKeepalive,
} from './settings.js';
import { connectHbone, type HboneTlsContexts } from './tls.js';

export interface DialOptions {
  /** Starts the TCP connection to `host:port` (a pod proxy's: in the pod netns, marked, tracked). */
  connect: () => Socket;
  host: string;
  port: number;
  source: SpiffeId;
  expected: readonly SpiffeId[];
  connectTimeoutMs: number;
  /** PING interval and timeout of the connection (default: ztunnel's 10 s / 20 s). */
  keepalive?: KeepaliveOptions;
}

/** A CONNECT answered with a status other than 200. */
export class HboneStatusError extends AmbitError {
  declare readonly code: 'ERR_HBONE_STATUS';

  constructor(
    readonly status: number,
    authority: string,
  ) {
    super(
      'ERR_HBONE_STATUS' satisfies HboneErrorCode,
      `HBONE CONNECT to ${authority} was answered with status ${status}`,
    );
  }
}

export class HboneConnection {
  readonly session: ClientHttp2Session;
  readonly peer: SpiffeId;
  #reserved = 0;
  #goaway = false;
  /** Called whenever the last stream slot is given back. */
  onIdle: () => void = () => {};

  constructor(session: ClientHttp2Session, peer: SpiffeId) {
    this.session = session;
    this.peer = peer;
    session.once('goaway', () => {
      this.#goaway = true;
    });
  }

  /** False once the session is closing, closed or told to go away: no new streams then. */
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

  /** Takes one stream slot if there is room. */
  tryReserve(): boolean {
    if (!this.ready || this.#reserved >= this.maxStreams) return false;
    this.#reserved++;
    return true;
  }

  #release(): void {
    this.#reserved--;
    if (this.#reserved === 0) this.onIdle();
  }

  /** Sends CONNECT on a reserved slot; resolves with the stream on 200, rejects with the status otherwise. */
  connect(headers: Record<string, string>): Promise<ClientHttp2Stream> {
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
          resolve(stream);
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

  close(): void {
    if (!this.session.closed) this.session.close();
  }
}

/** Dials the peer's HBONE listener and completes TCP, TLS and the HTTP/2 preface. */
export async function dialHbone(contexts: HboneTlsContexts, o: DialOptions): Promise<HboneConnection> {
  const tcp = o.connect();
  tcp.setNoDelay(true);
  const timer = setTimeout(() => {
    tcp.destroy(hboneError('ETIMEDOUT', `HBONE connect to ${formatAuthority(o.host, o.port)} timed out`));
  }, o.connectTimeoutMs);
  let tlsConn: Awaited<ReturnType<typeof connectHbone>>;
  try {
    tlsConn = await connectHbone(contexts, { source: o.source, expected: o.expected, socket: tcp });
  } finally {
    clearTimeout(timer);
  }
  const session = http2.connect(`https://${formatAuthority(o.host, o.port)}`, {
    createConnection: () => tlsConn.socket,
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
  return new HboneConnection(session, tlsConn.peer);
}
