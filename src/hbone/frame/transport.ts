/**
 * HBONE's tunnel over the framer: TunnelConnection and TunnelServer (../transport.ts) on FramerConnection.
 * Its streams are TunnelStreams themselves (stream.ts). Istio's windows (4 MiB per stream, 16 MiB per
 * connection) hold here: the framer always reads its socket, so two of them never deadlock.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { errorCode } from '../../errors.js';
import type { SpiffeId } from '../../identity/spiffe.js';
import { unmapIPv4 } from '../../net/ip.js';
import { HboneStatusError, hboneError } from '../errors.js';
import {
  CLIENT_MAX_STREAMS,
  DEFAULT_KEEPALIVE,
  type KeepaliveOptions,
  SERVER_MAX_STREAMS,
} from '../settings.js';
import type {
  TunnelClientOptions,
  TunnelConnection,
  TunnelConnectionEvent,
  TunnelConnectionInfo,
  TunnelOpening,
  TunnelRequestHeaders,
  TunnelServer,
  TunnelServerOptions,
  TunnelStreamHandler,
  TunnelTransport,
} from '../transport.js';
import { FramerConnection, type FramerOptions } from './connection.js';
import type { FramerError } from './errors.js';
import { ErrorCode } from './protocol.js';
import type { FramerStream } from './stream.js';

/** A client sends no request large enough to need more; a server accepts CONNECTs with many headers. */
const CLIENT_MAX_HEADER_LIST = 16 * 1024;
const SERVER_MAX_HEADER_LIST = 64 * 1024;

function framerOptions(keepalive: KeepaliveOptions | undefined, maxHeaderListSize: number): FramerOptions {
  return {
    settings: { maxConcurrentStreams: SERVER_MAX_STREAMS, maxHeaderListSize },
    keepalive: keepalive ?? DEFAULT_KEEPALIVE,
  };
}

export class FramerTunnelConnection extends EventEmitter implements TunnelConnection {
  readonly connection: FramerConnection;
  readonly peer: SpiffeId;
  #reserved = 0;

  constructor(connection: FramerConnection, peer: SpiffeId) {
    super();
    this.connection = connection;
    this.peer = peer;
    connection.once('goaway', () => this.emit('goaway' satisfies TunnelConnectionEvent));
    connection.once('close', () => this.emit('close' satisfies TunnelConnectionEvent));
  }

  get ready(): boolean {
    return this.connection.acceptsStreams;
  }

  get activeStreams(): number {
    return this.#reserved;
  }

  /** The ztunnel limit, or the peer's when it advertised a lower one. */
  get maxStreams(): number {
    return Math.min(CLIENT_MAX_STREAMS, this.connection.remoteSettings.maxConcurrentStreams);
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

  open(headers: TunnelRequestHeaders): TunnelOpening {
    let stream: FramerStream;
    try {
      stream = this.connection.request(headers);
    } catch (err) {
      this.#release();
      // Nothing went out: a connection that is going away refused the stream unprocessed.
      throw errorCode(err) === 'ERR_H2_CLOSED'
        ? hboneError('ERR_HBONE_REFUSED', `HBONE stream not opened: ${(err as Error).message}`)
        : hboneError('ERR_HBONE_STREAM', `HBONE stream could not be opened: ${(err as Error).message}`);
    }
    stream.once('close', () => this.#release());
    const answered = new Promise<void>((resolve, reject) => {
      const onClose = () => {
        stream.off('response', onResponse);
        const err = stream.errored as FramerError | null;
        reject(
          err?.code === 'ERR_HBONE_REFUSED'
            ? hboneError('ERR_HBONE_REFUSED', 'HBONE CONNECT refused by the server before it was processed')
            : hboneError(
                'ERR_HBONE_STREAM',
                `HBONE CONNECT failed: ${err?.message ?? 'stream closed before a response'}`,
                { cause: err ?? undefined },
              ),
        );
      };
      const onResponse = (status: number) => {
        stream.off('close', onClose);
        if (status === 200) {
          resolve();
          return;
        }
        stream.reset(`answered ${status}`, ErrorCode.CANCEL);
        reject(new HboneStatusError(status, headers[':authority'] ?? ''));
      };
      stream.once('close', onClose);
      stream.once('response', onResponse);
    });
    return { stream, answered };
  }

  drain(): void {
    this.connection.close();
  }

  close(): void {
    this.connection.destroy(undefined, ErrorCode.CANCEL);
  }
}

/** Starts HTTP/2 on a TLS socket whose server identity was verified; resolves on the peer's SETTINGS. */
export function connectFramer(
  socket: TLSSocket,
  peer: SpiffeId,
  o: TunnelClientOptions,
): Promise<FramerTunnelConnection> {
  const connection = new FramerConnection(
    socket,
    'client',
    framerOptions(o.keepalive, CLIENT_MAX_HEADER_LIST),
  );
  return new Promise((resolve, reject) => {
    const onClose = (err: Error | undefined) => {
      connection.off('remoteSettings', onSettings);
      reject(
        hboneError(
          'ERR_H2_HANDSHAKE',
          `HTTP/2 handshake with ${o.host} failed: ${err?.message ?? 'closed'}`,
          { cause: err },
        ),
      );
    };
    const onSettings = () => {
      connection.off('close', onClose);
      resolve(new FramerTunnelConnection(connection, peer));
    };
    connection.once('remoteSettings', onSettings);
    connection.once('close', onClose);
  });
}

export class FramerTunnelServer implements TunnelServer {
  readonly #connections = new Map<FramerConnection, TunnelConnectionInfo>();
  readonly #handler: TunnelStreamHandler;
  readonly #options: TunnelServerOptions;
  #draining = false;

  constructor(handler: TunnelStreamHandler, options: TunnelServerOptions = {}) {
    this.#handler = handler;
    this.#options = options;
  }

  serve(socket: Socket, peer: SpiffeId): void {
    const info: TunnelConnectionInfo = {
      peer,
      localIp: unmapIPv4(socket.localAddress ?? ''),
      remoteIp: unmapIPv4(socket.remoteAddress ?? ''),
      remotePort: socket.remotePort ?? 0,
    };
    const connection = new FramerConnection(
      socket,
      'server',
      framerOptions(this.#options.keepalive, SERVER_MAX_HEADER_LIST),
    );
    this.#connections.set(connection, info);
    connection.on('stream', (stream) => this.#handler(stream, stream.requestHeaders, info));
    connection.once('close', (err) => {
      this.#connections.delete(connection);
      // A connection error this side raised (a flood, a protocol violation): the client misbehaved.
      const framer = err as FramerError | undefined;
      if (framer?.code === 'ERR_H2_CONNECTION' && framer.h2Code !== undefined)
        this.#options.onAbuse?.(info, framer.message);
    });
    // A server draining still completes the handshake, so the client reads a GOAWAY and not a reset.
    if (this.#draining) connection.close();
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  drain(): void {
    this.#draining = true;
    for (const c of this.#connections.keys()) c.close();
  }

  close(): void {
    this.#draining = true;
    const closed = hboneError('ERR_HBONE_SERVER_CLOSED', 'the HBONE server closed');
    for (const c of this.#connections.keys()) c.destroy(closed);
    this.#connections.clear();
  }
}

export const framerTransport: TunnelTransport = {
  name: 'framer',
  connect: connectFramer,
  createServer: (handler, options) => new FramerTunnelServer(handler, options),
};
