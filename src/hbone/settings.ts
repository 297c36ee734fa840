/**
 * HTTP/2 parameters of HBONE. Istio uses a 4 MiB stream / 16 MiB connection window, but with node:http2 on
 * both ends a connection window above ~4 MiB deadlocks under bidirectional bulk traffic (node-performance.md),
 * so ambit uses 1 MiB / 4 MiB, which measured as fast.
 */
import type { Http2Session, Settings } from 'node:http2';
import { hboneError } from './errors.js';

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

export function clientSettings(): Settings {
  return {
    enablePush: false,
    initialWindowSize: STREAM_WINDOW,
    maxFrameSize: MAX_FRAME_SIZE,
    maxHeaderListSize: 16 * 1024,
  };
}

export function serverSettings(): Settings {
  return {
    initialWindowSize: STREAM_WINDOW,
    maxFrameSize: MAX_FRAME_SIZE,
    maxHeaderListSize: 64 * 1024,
    maxConcurrentStreams: SERVER_MAX_STREAMS,
  };
}

/**
 * Keeps PINGing the session; no answer within the timeout destroys it with an error, so its open streams
 * are reset (their apps see a TCP reset, not an EOF) and its pool entry goes with it.
 */
export function startKeepalive(
  session: Http2Session,
  { intervalMs, timeoutMs }: KeepaliveOptions = DEFAULT_KEEPALIVE,
): void {
  const giveUp = () => {
    if (!session.destroyed)
      session.destroy(
        hboneError('ERR_HBONE_KEEPALIVE', `HBONE keepalive timeout: no PING answer within ${timeoutMs}ms`),
      );
  };
  const timer = setInterval(() => {
    if (session.destroyed || session.closed) return;
    const deadline = setTimeout(giveUp, timeoutMs);
    deadline.unref();
    const sent = session.ping((err) => {
      clearTimeout(deadline);
      // A PING cancelled because the session is going away is not a timeout.
      if (err && !session.destroyed && !session.closed) giveUp();
    });
    if (!sent) clearTimeout(deadline);
  }, intervalMs);
  timer.unref();
  session.once('close', () => clearInterval(timer));
}
