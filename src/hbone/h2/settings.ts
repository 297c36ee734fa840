/**
 * HBONE's parameters (../settings.ts) as node:http2 settings, and the PING keepalive of a node:http2
 * session.
 */
import type { Http2Session, Settings } from 'node:http2';
import { hboneError } from '../errors.js';
import {
  DEFAULT_KEEPALIVE,
  type KeepaliveOptions,
  MAX_FRAME_SIZE,
  SERVER_MAX_STREAMS,
  STREAM_WINDOW,
} from '../settings.js';

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
