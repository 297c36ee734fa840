/**
 * The byte pipe between a TCP socket and an HBONE stream (reference ztunnel.md §3.7, RFC 9113 §8.5):
 * EOF on either side half-closes the other (FIN <-> END_STREAM); a TCP reset becomes an RST_STREAM
 * (TunnelStream.reset). The stream side ends cleanly only when END_STREAM went both ways; any other end of the
 * stream (RST_STREAM with any code, a GOAWAY that cuts it, the HTTP/2 connection closing or timing out)
 * means bytes may be missing, so the socket is reset, as a broken direct TCP connection would be, and the
 * pipe reports an error.
 */
import type { Socket } from 'node:net';
import { resetSocket } from '../sys/index.js';
import type { TunnelStream } from './transport.js';

// The app going away abruptly is a normal end of a proxied connection, as in ztunnel's copy loop.
const CLOSE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

export interface PipeResult {
  /** Bytes read from the socket and sent into the stream. */
  socketToStream: number;
  /** Bytes read from the stream and written to the socket. */
  streamToSocket: number;
  /** Why the pipe ended abnormally, if it did. */
  error?: string;
}

/** Pipes until both sides are closed; destroying either from outside ends it (as a reset). */
export function pipeSocketStream(socket: Socket, stream: TunnelStream): Promise<PipeResult> {
  return new Promise((resolve) => {
    // The socket may have ended already, its FIN sent as END_STREAM with early data (early-data.ts).
    let socketEof = socket.readableEnded;
    let socketClosed = false;
    let streamClosed = false;
    // The socket broke first: the stream is reset because of the app, not the other way round.
    let socketBroke = false;
    let socketError: string | undefined;

    const finish = () => {
      if (!(socketClosed && streamClosed)) return;
      const tunnel = socketBroke ? undefined : stream.failure;
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
    socket.once('close', (hadError) => {
      socketClosed = true;
      // Closed without a clean EOF (reset, or destroyed by the proxy): tell the peer it was not an EOF.
      if (hadError || !socketEof) {
        socketBroke = stream.live;
        stream.reset('the TCP connection was reset or closed without EOF');
      }
      finish();
    });
    // A peer's RST_STREAM can follow its END_STREAM at once (node:http2 sends both when it closes a stream
    // with a code), so the FIN waits one turn to see whether the stream is about to be reset instead.
    stream.on('end', () => {
      setImmediate(() => {
        if (socket.destroyed) return;
        if (stream.failure) resetSocket(socket);
        else socket.end();
      });
    });
    stream.once('close', () => {
      streamClosed = true;
      if (!socket.destroyed) {
        if (stream.failure) resetSocket(socket);
        // The stream is gone for good: flush what it delivered, then drop the socket.
        else socket.end(() => socket.destroy());
      }
      finish();
    });
    if (!socketEof) socket.pipe(stream);
    pipeBatched(stream, socket);
  });
}

/**
 * stream -> socket with the writes of one tick corked into one syscall: the stream hands DATA over a
 * frame at a time, as small as the peer framed it, and writing each on its own cost a third of the
 * throughput when measured (node-performance.md). Back-pressure is kept: the stream pauses while the
 * socket is full.
 */
function pipeBatched(stream: TunnelStream, socket: Socket): void {
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
