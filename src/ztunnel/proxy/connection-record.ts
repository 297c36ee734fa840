/**
 * The record of one proxied connection (ztunnel's ConnectionResult), made when the connection is accepted:
 * it holds what the access log and the metrics say about the connection, keeps it under policy while it is
 * open, and is ended once: rejected before it was proxied, or closed with its bytes and outcome.
 */
import type { ConnectionTracker, TrackedConnection } from '../../policy/tracker.js';
import { logConnectionComplete, logConnectionFailed, logConnectionOpened } from './access-log.js';
import type { ConnectionInfo, Direction } from './connection-info.js';
import type { TrafficMetrics, TrafficSeries } from './metrics.js';

/** Bytes one proxied connection moved, by direction of the copy. */
export interface ConnectionBytes {
  downstreamToUpstream: number;
  upstreamToDownstream: number;
}

const NO_BYTES: ConnectionBytes = { downstreamToUpstream: 0, upstreamToDownstream: 0 };

export class ConnectionRecord {
  readonly info: ConnectionInfo;
  readonly #metrics: TrafficMetrics;
  #series: TrafficSeries | undefined;
  #untrack: (() => void) | undefined;
  #ended = false;

  constructor(metrics: TrafficMetrics, accepted: { direction: Direction; srcAddr: string; dstAddr: string }) {
    this.#metrics = metrics;
    this.info = { ...accepted, securityPolicy: 'unknown', responseFlags: '-', startedAt: Date.now() };
  }

  /** DEBUG `connection opened`: the connection is on its way to its upstream. */
  opened(): void {
    logConnectionOpened(this.info);
  }

  /**
   * Counts the connection as opened. Its metric labels are taken here, once: what is known by now (a
   * response flag, the peer's identity) shows in every counter of this connection.
   */
  count(): TrafficSeries {
    this.#series ??= this.#metrics.connectionOpened(this.info);
    return this.#series;
  }

  /** Keeps the connection under policy until it ends: a change that now denies it calls `close`. */
  trackPolicy(tracker: ConnectionTracker, connection: TrackedConnection): void {
    this.#untrack = tracker.track(connection);
  }

  /** WARN `connection failed`: refused before it was proxied (no metrics). */
  reject(error: string): void {
    if (this.#end()) logConnectionFailed(this.info, error);
  }

  /**
   * Counted closed with its bytes (and opened first, if it was not yet), then `connection complete`:
   * `bytes_sent` is client->server for outbound, server->client for inbound, as ztunnel logs it.
   */
  close(bytes: ConnectionBytes = NO_BYTES, error?: string): void {
    if (!this.#end()) return;
    const { downstreamToUpstream: up, upstreamToDownstream: down } = bytes;
    this.#metrics.connectionClosed(this.count(), up, down);
    const [sent, recv] = this.info.direction === 'outbound' ? [up, down] : [down, up];
    logConnectionComplete(this.info, sent, recv, error);
  }

  /** True the first time: a connection ends once. */
  #end(): boolean {
    if (this.#ended) return false;
    this.#ended = true;
    this.#untrack?.();
    return true;
  }
}
