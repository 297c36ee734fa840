/**
 * What a peer may do before this side calls it abuse. A hand-written HTTP/2 stack that always keeps
 * reading its socket (the point of it: node:http2 stops reading while a write is pending and deadlocks
 * under bidirectional bulk) has to bound everything a peer can make it do or hold.
 */

export interface FramerLimits {
  /** Rapid reset (CVE-2023-44487): RST_STREAMs received, burst and refill per second (nghttp2's rate). */
  resetBurst: number;
  resetRefillPerSecond: number;
  /** PING and SETTINGS frames that need an answer: burst and refill per second. */
  pingBurst: number;
  pingRefillPerSecond: number;
  settingsBurst: number;
  settingsRefillPerSecond: number;
  /** DATA frames that are empty and do not end the stream (CVE-2019-9518). */
  emptyDataBurst: number;
  emptyDataRefillPerSecond: number;
  /** CONTINUATION flood (CVE-2024-27316): frames per header block and octets of one encoded block. */
  maxContinuations: number;
  maxHeaderBlockBytes: number;
  /** Bytes this side may have queued to the socket that the peer has not read (answers to floods). */
  maxQueuedOutput: number;
  /** Streams reset by this side whose late frames are ignored quietly instead of answered. */
  rememberedResets: number;
}

export const DEFAULT_LIMITS: Readonly<FramerLimits> = {
  resetBurst: 200,
  resetRefillPerSecond: 33,
  pingBurst: 100,
  pingRefillPerSecond: 10,
  settingsBurst: 100,
  settingsRefillPerSecond: 10,
  emptyDataBurst: 1000,
  emptyDataRefillPerSecond: 100,
  maxContinuations: 32,
  maxHeaderBlockBytes: 128 * 1024,
  maxQueuedOutput: 32 * 1024 * 1024,
  rememberedResets: 1024,
};

/** A token bucket: `take()` is false once the burst is spent faster than it refills. */
export class TokenBucket {
  private tokens: number;
  private last = performance.now();

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
  ) {
    this.tokens = burst;
  }

  take(): boolean {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
