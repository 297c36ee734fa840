/**
 * The seam between HBONE and the HTTP/2 that carries it. The pool, the pipe and the proxy speak only
 * these interfaces; the transport turns them into frames (`frame/`, the framer; the pool's tests use a
 * fake). An implementation keeps HBONE's rules: Istio's windows and stream limits (settings.ts), PING
 * keepalive, GOAWAY on a drain with the streams in flight finishing, a reset that is never preceded by
 * END_STREAM, and the rapid-reset limit on the server side.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { SpiffeId } from '../identity/spiffe.js';
import type { KeepaliveOptions } from './settings.js';

/**
 * One CONNECT stream: the tunnel's bytes both ways. Ending the writable side sends END_STREAM, the
 * peer's END_STREAM ends the readable side. Its errors need no listener: what went wrong is `failure`.
 */
export interface TunnelStream extends Duplex {
  /**
   * Server side: answers the CONNECT. 200 opens the tunnel; any other status refuses it and ends the
   * stream. Does nothing once the stream is answered or gone.
   */
  respond(status: number): void;
  /**
   * Server side: RST_STREAM REFUSED_STREAM. Nothing was done with the stream, so the client may open
   * it again elsewhere (ERR_HBONE_REFUSED there).
   */
  refuse(): void;
  /**
   * RST_STREAM alone, never after an END_STREAM, so the peer hands its app an error and not an end;
   * `reason` becomes this side's `failure`. Does nothing once the stream is gone.
   */
  reset(reason: string): void;
  /** False once the stream can carry nothing more: reset by either side, closed, or its connection gone. */
  readonly live: boolean;
  /** True once a response was sent (server side). */
  readonly responded: boolean;
  /**
   * Why the tunnel did not end cleanly. Undefined while the stream is live, and after a clean end:
   * END_STREAM went both ways. Otherwise the reason: an error of the stream, a reset (with its code),
   * the connection gone, or an end before one side finished sending; bytes may be missing then.
   */
  readonly failure: string | undefined;
}

/** The header block of a CONNECT as sent: lower-case names, pseudo-headers with their ':'. */
export type TunnelRequestHeaders = Readonly<Record<string, string>>;

/** The header block of a CONNECT as received (values of repeated headers joined with ', '). */
export type TunnelRequest = Readonly<Record<string, string | undefined>>;

/** A CONNECT stream sent, its answer pending. */
export interface TunnelOpening {
  /** Writable at once (early data); readable once answered. */
  readonly stream: TunnelStream;
  /**
   * Resolves once answered 200. Rejects with HboneStatusError for another status, ERR_HBONE_REFUSED when
   * the peer refused the stream unprocessed (safe to retry elsewhere: it discarded any early data),
   * ERR_HBONE_STREAM otherwise; the stream is gone then.
   */
  readonly answered: Promise<void>;
}

/** Events of a client connection; each carries no argument. */
export type TunnelConnectionEvent =
  /** The last stream slot was given back. */
  | 'idle'
  /** The peer sent GOAWAY: no new stream here (those in flight may finish). */
  | 'goaway'
  /** The connection is gone. */
  | 'close';

/** One client connection to a peer's HBONE listener, carrying many CONNECT streams. */
export interface TunnelConnection {
  /** The peer's identity, verified in the TLS handshake. */
  readonly peer: SpiffeId;
  /** False once the connection is closing, closed or told to go away: it takes no new stream. */
  readonly ready: boolean;
  /** Stream slots taken (reserved or carrying a stream). */
  readonly activeStreams: number;
  /**
   * Takes one stream slot if there is room under the ztunnel limit and the peer's
   * SETTINGS_MAX_CONCURRENT_STREAMS. The slot is given back when the stream opened on it closes, or
   * when it fails to open.
   */
  tryReserve(): boolean;
  /**
   * Sends CONNECT on a reserved slot and hands the stream over at once, before the answer: what is
   * written to it now goes out as DATA right after the HEADERS (early data, RFC 9113 §8.5), so the
   * client's first bytes need no extra round trip. Its readable side delivers nothing before the answer
   * (the peer's DATA can only follow its 200). Throws ERR_HBONE_REFUSED when the connection is going
   * away (nothing went out: safe to retry elsewhere), ERR_HBONE_STREAM when it cannot open a stream.
   */
  open(headers: TunnelRequestHeaders): TunnelOpening;
  /** Graceful: GOAWAY, no new stream; streams in flight finish, then the connection closes. */
  drain(): void;
  /** Immediate: streams in flight are reset. */
  close(): void;
  on(event: TunnelConnectionEvent, listener: () => void): this;
  once(event: TunnelConnectionEvent, listener: () => void): this;
}

/** What a server knows of the connection a stream arrived on. */
export interface TunnelConnectionInfo {
  /** The client's identity, verified in the TLS handshake. */
  peer: SpiffeId;
  /** The local IP the TCP connection arrived on (the pod IP the client dialled). */
  localIp: string;
  remoteIp: string;
  remotePort: number;
}

/** Handles one stream a client opened; per-stream policy lives here (the ztunnel inbound path). */
export type TunnelStreamHandler = (
  stream: TunnelStream,
  request: TunnelRequest,
  connection: TunnelConnectionInfo,
) => void;

/** The server side of HBONE's HTTP/2 on a pod's :15008, behind its TLS acceptor. */
export interface TunnelServer {
  /** Starts HTTP/2 on a TLS socket whose client identity was verified. */
  serve(socket: Socket, peer: SpiffeId): void;
  /** Connections being served. */
  readonly connectionCount: number;
  /**
   * Graceful: GOAWAY (NO_ERROR) on every connection, so clients open no new stream here; streams in
   * flight run to their end, then each connection closes.
   */
  drain(): void;
  /** Immediate: every connection and its streams are cut (reset, not ended). */
  close(): void;
}

export interface TunnelClientOptions {
  /** The peer's address, for the :authority of the connection and error messages. */
  host: string;
  port: number;
  /** PING interval and timeout (default: ztunnel's 10 s / 20 s). */
  keepalive?: KeepaliveOptions;
}

export interface TunnelServerOptions {
  /** PING interval and timeout (default: ztunnel's 10 s / 20 s). */
  keepalive?: KeepaliveOptions;
  /** Hears of each connection closed for misbehaving (to log it). */
  onAbuse?: (connection: TunnelConnectionInfo | undefined, reason: string) => void;
}

/** An HTTP/2 implementation of HBONE's tunnel, client and server. */
export interface TunnelTransport {
  /** Its name, for logs and for choosing it. */
  readonly name: string;
  /**
   * Starts the client side on a TLS socket whose server identity was verified; resolves once the
   * peer's SETTINGS arrived (ERR_H2_HANDSHAKE otherwise).
   */
  connect(socket: TLSSocket, peer: SpiffeId, options: TunnelClientOptions): Promise<TunnelConnection>;
  /** A server handing every stream of the connections it serves to `handler`. */
  createServer(handler: TunnelStreamHandler, options?: TunnelServerOptions): TunnelServer;
}
