/**
 * The byte pipe between a TCP socket and an HBONE stream (reference ztunnel.md §3.7, RFC 9113 §8.5):
 * EOF on either side half-closes the other (FIN <-> END_STREAM); a TCP reset becomes an RST_STREAM
 * (see resetStream). The stream side ends cleanly only when END_STREAM went both ways; any other end of the
 * stream (RST_STREAM with any code, a GOAWAY that cuts it, the HTTP/2 connection closing or timing out)
 * means bytes may be missing, so the socket is reset, as a broken direct TCP connection would be, and the
 * pipe reports an error.
 */
import http2, { type Http2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { resetSocket } from '../sys/index.js';
import { hboneError } from './errors.js';

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL } = http2.constants;
// The app going away abruptly is a normal end of a proxied connection, as in ztunnel's copy loop.
const CLOSE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

// HTTP/2 error codes by value (RFC 9113 §7), for error messages.
const CODE_NAMES = [
  'NO_ERROR',
  'PROTOCOL_ERROR',
  'INTERNAL_ERROR',
  'FLOW_CONTROL_ERROR',
  'SETTINGS_TIMEOUT',
  'STREAM_CLOSED',
  'FRAME_SIZE_ERROR',
  'REFUSED_STREAM',
  'CANCEL',
  'COMPRESSION_ERROR',
  'CONNECT_ERROR',
  'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY',
  'HTTP_1_1_REQUIRED',
];

/**
 * Resets a stream with RST_STREAM alone. RFC 9113 §8.5 asks for CONNECT_ERROR, but node:http2's
 * close(code) first ends the stream (END_STREAM), which the peer would hand its app as a FIN before the
 * reset; destroying it with an error sends only the RST_STREAM (INTERNAL_ERROR), which every peer,
 * ztunnel included, reads as an error rather than an end.
 */
export function resetStream(stream: Http2Stream, reason: string): void {
  if (stream.destroyed) return;
  // The stream emits the error it is destroyed with; it is ours, and must not go unhandled.
  stream.on('error', () => {});
  stream.destroy(hboneError('ERR_HBONE_STREAM_RESET', reason));
}

export interface PipeResult {
  /** Bytes read from the socket and sent into the stream. */
  socketToStream: number;
  /** Bytes read from the stream and written to the socket. */
  streamToSocket: number;
  /** Why the pipe ended abnormally, if it did. */
  error?: string;
}

/** Pipes until both sides are closed; destroying either from outside ends it (as a reset). */
export function pipeSocketStream(socket: Socket, stream: Http2Stream): Promise<PipeResult> {
  return new Promise((resolve) => {
    let socketEof = false;
    let socketClosed = false;
    let streamClosed = false;
    // The socket broke first: the stream is reset because of the app, not the other way round.
    let socketBroke = false;
    // END_STREAM arrived. A stream that is destroyed (its connection gone) also ends its readable side,
    // but only a live one ends because of END_STREAM.
    let peerEnded = false;
    // The stream closed before this side's END_STREAM: what the app was still sending is lost.
    let aborted = false;
    let socketError: string | undefined;
    let streamError: string | undefined;

    const session = stream.session;
    const broken = (): string | undefined => {
      if (!stream.closed && !stream.destroyed) return undefined;
      const code = stream.rstCode ?? NGHTTP2_NO_ERROR;
      if (code !== NGHTTP2_NO_ERROR && code !== NGHTTP2_CANCEL)
        return `HBONE stream reset (${CODE_NAMES[code] ?? code})`;
      // A connection that closes resets its open streams with CANCEL (or NO_ERROR when destroyed here).
      if ((!peerEnded || aborted) && session?.destroyed)
        return 'HBONE connection closed before the stream ended';
      if (code === NGHTTP2_CANCEL) return 'HBONE stream reset (CANCEL)';
      if (!peerEnded) return 'HBONE stream ended before the peer finished sending';
      if (aborted) return 'HBONE stream ended before this side finished sending';
      return undefined;
    };
    const finish = () => {
      if (!(socketClosed && streamClosed)) return;
      const tunnel = socketBroke ? undefined : (streamError ?? broken());
      resolve({
        socketToStream: socket.bytesRead,
        streamToSocket: socket.bytesWritten,
        error: socketError ?? tunnel,
      });
    };

    socket.on('end', () => {
      socketEof = true;
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!CLOSE_CODES.has(err.code ?? '')) socketError ??= err.message;
    });
    stream.on('error', (err: Error) => {
      streamError ??= err.message;
    });
    stream.on('aborted', () => {
      aborted = true;
    });
    socket.once('close', (hadError) => {
      socketClosed = true;
      // Closed without a clean EOF (reset, or destroyed by the proxy): tell the peer it was not an EOF.
      if ((hadError || !socketEof) && !stream.destroyed) {
        socketBroke = !stream.closed;
        resetStream(stream, 'the TCP connection was reset or closed without EOF');
      }
      finish();
    });
    // A peer's RST_STREAM can follow its END_STREAM at once (node:http2 sends both when it closes a stream
    // with a code), so the FIN waits one turn to see whether the stream is about to be reset instead.
    stream.on('end', () => {
      if (!stream.destroyed) peerEnded = true;
      setImmediate(() => {
        if (socket.destroyed) return;
        if (broken()) resetSocket(socket);
        else socket.end();
      });
    });
    stream.once('close', () => {
      streamClosed = true;
      if (!socket.destroyed) {
        if (broken()) resetSocket(socket);
        // The stream is gone for good: flush what it delivered, then drop the socket.
        else socket.end(() => socket.destroy());
      }
      finish();
    });
    socket.pipe(stream);
    pipeBatched(stream, socket);
  });
}

/**
 * stream -> socket with the writes of one tick corked into one syscall: node:http2 hands
 * DATA over in ~8 KiB pieces, and writing each on its own costs a third of the throughput
 * (node-performance.md). Back-pressure is kept: the stream pauses while the socket is full.
 */
function pipeBatched(stream: Http2Stream, socket: Socket): void {
  let corked = false;
  const uncork = () => {
    corked = false;
    if (!socket.destroyed) socket.uncork();
  };
  stream.on('data', (chunk: Buffer) => {
    if (socket.destroyed || socket.writableEnded) return;
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    if (!socket.write(chunk)) {
      stream.pause();
      socket.once('drain', () => stream.resume());
    }
  });
}
