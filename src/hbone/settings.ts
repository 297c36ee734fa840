/**
 * HTTP/2 parameters of HBONE: Istio's ztunnel windows, 4 MiB per stream and 16 MiB per connection, and its
 * 1 MiB maximum frame. Windows this large deadlock two HTTP/2 ends that stop reading their socket while a
 * write is pending (node:http2 does); the framer (frame/) always reads, so they hold under bidirectional
 * bulk (test/hbone/frame/flow.test.ts).
 */
export const STREAM_WINDOW = 4 * 1024 * 1024;
export const CONNECTION_WINDOW = 16 * 1024 * 1024;
export const MAX_FRAME_SIZE = 1024 * 1024;
export const CLIENT_MAX_STREAMS = 100;
export const SERVER_MAX_STREAMS = 200;

/** HTTP/2 PING keepalive of an HBONE connection, both as client and as server. */
export interface KeepaliveOptions {
  /** How often a PING is sent (ztunnel: 10 s, the first after 10 s). */
  intervalMs: number;
  /** How long a PING may go unanswered before the connection is given up (ztunnel: 20 s). */
  timeoutMs: number;
}

export const DEFAULT_KEEPALIVE: Readonly<KeepaliveOptions> = { intervalMs: 10_000, timeoutMs: 20_000 };
