/**
 * The bidirectional copy between a downstream and an upstream socket (reference ztunnel.md §3.7):
 * both directions run to completion; EOF on one side half-closes the other (shutdown(SHUT_WR));
 * a reset on one side, or a side cut from outside, resets the other; both sockets are gone when it resolves.
 */
import type { Socket } from 'node:net';
import { pipeline } from 'node:stream';
import { resetSocket } from '../sys/index.js';

export interface CopyResult {
  /** Bytes read from downstream and written upstream. */
  downstreamToUpstream: number;
  /** Bytes read from upstream and written downstream. */
  upstreamToDownstream: number;
  /** The first error that ended the copy, when it did not end cleanly. */
  error?: Error;
}

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

function isReset(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code;
  return code !== undefined && RESET_CODES.has(code);
}

/** Copies until both directions are done; destroying either socket from outside ends it. */
export function copyBidirectional(downstream: Socket, upstream: Socket): Promise<CopyResult> {
  return new Promise((resolve) => {
    let pending = 2;
    let firstError: Error | undefined;
    // Registered before pipeline's own listeners, so the peer is reset before pipeline destroys it
    // (a plain destroy would send FIN and turn a reset into a clean close).
    const resetPeer = (peer: Socket) => (err: Error) => {
      firstError ??= err;
      resetSocket(peer);
    };
    downstream.once('error', resetPeer(upstream));
    upstream.once('error', resetPeer(downstream));
    // A socket destroyed from outside (a policy cut, a stopping proxy) closes with neither an error nor
    // an EOF: its peer is reset too, or pipeline would close it with a FIN, as if it were complete.
    const resetPeerIfCut = (self: Socket, peer: Socket) => {
      let eof = false;
      self.once('end', () => {
        eof = true;
      });
      self.once('close', () => {
        if (!eof) resetSocket(peer);
      });
    };
    resetPeerIfCut(downstream, upstream);
    resetPeerIfCut(upstream, downstream);
    const done = (err: Error | null | undefined) => {
      if (err) firstError ??= err;
      if (--pending === 0) {
        downstream.destroy();
        upstream.destroy();
        resolve({
          downstreamToUpstream: downstream.bytesRead,
          upstreamToDownstream: upstream.bytesRead,
          error: firstError && !isReset(firstError) ? firstError : undefined,
        });
      }
    };
    // pipeline ends the writer when the reader ends (half-close), and destroys both on error.
    pipeline(downstream, upstream, done);
    pipeline(upstream, downstream, done);
  });
}
