/**
 * The HBONE connection pool (reference ztunnel.md §3.4): HTTP/2 connections keyed by (scope, source
 * identity, expected peer identities, destination address), each carrying up to its stream limit. One
 * caller dials per key while the others wait for that dial; unused connections are released after an
 * idle timeout; closed or GOAWAY'd connections leave the pool. It knows connections only as
 * TunnelConnections.
 */

import { errorCode } from '../errors.js';
import type { SpiffeId } from '../identity/spiffe.js';
import { type HboneErrorCode, hboneError } from './errors.js';
import { formatAuthority } from './headers.js';
import type { TunnelConnection, TunnelRequestHeaders, TunnelStream } from './transport.js';

export const DEFAULT_IDLE_TIMEOUT_MS = 5 * 60_000;
/** Attempts at opening a tunnel stream when the peer refuses it unprocessed (REFUSED_STREAM). */
export const REFUSED_STREAM_ATTEMPTS = 3;
// Each round either returns or waits for a dial that made progress; the bound only stops a pathological peer.
const MAX_CHECKOUT_ROUNDS = 64;

/**
 * Bytes a caller sends on a stream before its answer (early data), kept until the answer so that a
 * stream refused unprocessed loses none of them: each new stream gets them again, in order, first.
 */
export interface EarlyData {
  /** A stream opened, not yet answered: write what was kept to it, then what comes next. */
  attach(stream: TunnelStream): void;
  /** A stream was answered 200, or opening failed for good: write no more, drop what was kept. */
  detach(): void;
}

export interface PoolKey {
  /** Separates pools of different pods (the source pod's uid). */
  scope: string;
  source: SpiffeId;
  expected: readonly SpiffeId[];
  host: string;
  port: number;
}

/** Makes a new connection for a key (from the key's source pod netns). */
export type Dialer = () => Promise<TunnelConnection>;

interface Entry {
  connections: Set<TunnelConnection>;
  dialing?: Promise<TunnelConnection>;
}

export interface PoolStats {
  connections: number;
  dials: number;
}

function keyString(k: PoolKey): string {
  return [k.scope, k.source, [...k.expected].sort().join(','), formatAuthority(k.host, k.port)].join('|');
}

export class HbonePool {
  readonly #entries = new Map<string, Entry>();
  readonly #idleTimers = new Map<TunnelConnection, NodeJS.Timeout>();
  readonly #idleTimeoutMs: number;
  #dials = 0;
  #closed = false;

  constructor(options: { idleTimeoutMs?: number } = {}) {
    this.#idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  }

  /**
   * Opens a CONNECT stream to `key`'s peer on a pooled connection. A stream the peer refused
   * unprocessed (its ztunnel draining sent GOAWAY as we opened it) is opened once more: the pool no
   * longer hands out that connection, so it goes to another. `onConnection` hears of each connection
   * tried, so the peer's identity is known even when the stream fails. `early` is the caller's data
   * sent before the answer: attached to each stream opened, detached once one is answered or all failed.
   */
  async connect(
    key: PoolKey,
    dial: Dialer,
    headers: TunnelRequestHeaders,
    onConnection: (conn: TunnelConnection) => void = () => {},
    early?: EarlyData,
  ): Promise<TunnelStream> {
    try {
      for (let attempt = 1; ; attempt++) {
        const conn = await this.checkout(key, dial);
        onConnection(conn);
        try {
          const { stream, answered } = conn.open(headers);
          early?.attach(stream);
          await answered;
          return stream;
        } catch (err) {
          if (
            attempt >= REFUSED_STREAM_ATTEMPTS ||
            errorCode(err) !== ('ERR_HBONE_REFUSED' satisfies HboneErrorCode)
          )
            throw err;
        }
      }
    } finally {
      early?.detach();
    }
  }

  /** A connection for `key` with one stream slot reserved for the caller. */
  async checkout(key: PoolKey, dial: Dialer): Promise<TunnelConnection> {
    const k = keyString(key);
    for (let round = 0; round < MAX_CHECKOUT_ROUNDS; round++) {
      if (this.#closed) throw hboneError('ERR_POOL_CLOSED', 'the HBONE pool is closed');
      const entry = this.#entry(k);
      for (const conn of entry.connections) {
        if (conn.tryReserve()) {
          this.#clearIdle(conn);
          return conn;
        }
      }
      if (entry.dialing) {
        // Waiters share the dialler's outcome: a failed dial fails them all rather than N more dials.
        await entry.dialing;
        continue;
      }
      entry.dialing = this.#newConnection(k, entry, dial);
      try {
        await entry.dialing;
      } finally {
        entry.dialing = undefined;
      }
    }
    throw hboneError(
      'ERR_POOL_EXHAUSTED',
      `no HBONE connection to ${formatAuthority(key.host, key.port)} had room`,
    );
  }

  async #newConnection(k: string, entry: Entry, dial: Dialer): Promise<TunnelConnection> {
    this.#dials++;
    const conn = await dial();
    if (this.#closed) {
      conn.close();
      throw hboneError('ERR_POOL_CLOSED', 'the HBONE pool is closed');
    }
    entry.connections.add(conn);
    const evict = () => this.#evict(k, conn);
    conn.once('close', evict);
    conn.once('goaway', () => {
      evict();
      if (conn.activeStreams === 0) conn.drain();
    });
    conn.on('idle', () => this.#startIdle(k, conn));
    this.#startIdle(k, conn);
    return conn;
  }

  #entry(k: string): Entry {
    let entry = this.#entries.get(k);
    if (!entry) {
      entry = { connections: new Set() };
      this.#entries.set(k, entry);
    }
    return entry;
  }

  #evict(k: string, conn: TunnelConnection): void {
    this.#clearIdle(conn);
    const entry = this.#entries.get(k);
    if (!entry) return;
    entry.connections.delete(conn);
    if (entry.connections.size === 0 && !entry.dialing) this.#entries.delete(k);
  }

  #startIdle(k: string, conn: TunnelConnection): void {
    this.#clearIdle(conn);
    const timer = setTimeout(() => {
      if (conn.activeStreams > 0) return;
      this.#evict(k, conn);
      conn.drain();
    }, this.#idleTimeoutMs);
    timer.unref();
    this.#idleTimers.set(conn, timer);
  }

  #clearIdle(conn: TunnelConnection): void {
    const timer = this.#idleTimers.get(conn);
    if (timer) clearTimeout(timer);
    this.#idleTimers.delete(conn);
  }

  stats(): PoolStats {
    let connections = 0;
    for (const e of this.#entries.values()) connections += e.connections.size;
    return { connections, dials: this.#dials };
  }

  /** Closes every pooled connection gracefully (streams in flight finish). */
  close(): void {
    this.#closed = true;
    for (const e of this.#entries.values()) for (const c of e.connections) c.drain();
    for (const t of this.#idleTimers.values()) clearTimeout(t);
    this.#idleTimers.clear();
    this.#entries.clear();
  }
}
