/**
 * HTTP/2 parameters of HBONE. Istio uses a 4 MiB stream / 16 MiB connection window, but with node:http2 on
 * both ends a connection window above ~4 MiB deadlocks under bidirectional bulk traffic (node-performance.md),
 * so ambit uses 1 MiB / 4 MiB, which measured as fast. Every transport (transport.ts) keeps these.
 */
export const STREAM_WINDOW = 1024 * 1024;
export const CONNECTION_WINDOW = 4 * 1024 * 1024;
export const MAX_FRAME_SIZE = 1024 * 1024;
export const CLIENT_MAX_STREAMS = 100;
export const SERVER_MAX_STREAMS = 200;
/**
 * Rapid reset (CVE-2023-44487): a server session allows a burst of this many streams that the client resets
 * before they were answered, refilled at RESET_REFILL_PER_SECOND (nghttp2's rate). Beyond it the session
 * gets GOAWAY ENHANCE_YOUR_CALM and is closed. The burst is below nghttp2's own limit (1000): nghttp2's
 * GOAWAY leaves a session that no longer serves but stays open until the keepalive gives up on it.
 */
export const RESET_BURST = 200;
export const RESET_REFILL_PER_SECOND = 33;

/** HTTP/2 PING keepalive of an HBONE connection, both as client and as server. */
export interface KeepaliveOptions {
  /** How often a PING is sent (ztunnel: 10 s, the first after 10 s). */
  intervalMs: number;
  /** How long a PING may go unanswered before the connection is given up (ztunnel: 20 s). */
  timeoutMs: number;
}

export const DEFAULT_KEEPALIVE: Readonly<KeepaliveOptions> = { intervalMs: 10_000, timeoutMs: 20_000 };
