/**
 * The byte pipe between a TCP socket and an HBONE stream (reference ztunnel.md §3.7, RFC 9113 §8.5):
 * EOF on either side half-closes the other (FIN <-> END_STREAM); a TCP reset becomes RST_STREAM
 * CONNECT_ERROR and an RST_STREAM other than NO_ERROR/CANCEL becomes a TCP reset.
 */
import http2, { type Http2Stream } from 'node:http2';
import type { Socket } from 'node:net';

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_CONNECT_ERROR } = http2.constants;
// A peer going away abruptly is a normal end of a proxied connection, as in ztunnel's copy loop.
const CLOSE_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_HTTP2_STREAM_ERROR',
]);

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
    let error: string | undefined;
    const finish = () => {
      if (!(socketClosed && streamClosed)) return;
      resolve({ socketToStream: socket.bytesRead, streamToSocket: socket.bytesWritten, error });
    };
    socket.on('end', () => {
      socketEof = true;
    });
    const onError = (err: NodeJS.ErrnoException) => {
      if (!CLOSE_CODES.has(err.code ?? '')) error ??= err.message;
    };
    socket.on('error', onError);
    stream.on('error', onError);
    socket.once('close', (hadError) => {
      socketClosed = true;
      // Closed without a clean EOF (reset, or destroyed by the proxy): tell the peer it was not an EOF.
      if ((hadError || !socketEof) && !stream.destroyed) stream.close(NGHTTP2_CONNECT_ERROR);
      finish();
    });
    // RST_STREAM also ends the readable side, before rstCode is known; a FIN sent then would make the TCP
    // reset impossible (libuv refuses a reset after shutdown), so the FIN waits one turn for a close.
    const isReset = () => {
      const code = stream.rstCode;
      return stream.closed && code !== undefined && code !== NGHTTP2_NO_ERROR && code !== NGHTTP2_CANCEL;
    };
    stream.on('end', () => {
      setImmediate(() => {
        if (socket.destroyed) return;
        if (isReset()) socket.resetAndDestroy();
        else socket.end();
      });
    });
    stream.once('close', () => {
      streamClosed = true;
      if (isReset()) {
        if (!socket.destroyed) socket.resetAndDestroy();
      } else if (!socket.destroyed) {
        // The stream is gone for good: flush what it delivered, then drop the socket.
        socket.end(() => socket.destroy());
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
