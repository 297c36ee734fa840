/**
 * Early data (RFC 9113 §8.5): the app's first bytes go out with the CONNECT instead of after its 200. A
 * client usually writes its request at once, so waiting for the answer before reading its socket cost a
 * full round trip between the ztunnels per new connection. The bytes are written to the stream as they
 * are read, and kept (up to a bound, then the socket is paused) until the answer: a stream the peer
 * refused unprocessed gets them again on the next one (pool.ts). After the answer the pipe (pipe.ts)
 * takes the socket over; socket.bytesRead already counts these bytes, once.
 */
import type { Socket } from 'node:net';
import type { EarlyData } from './pool.js';
import type { TunnelStream } from './transport.js';

/** Bytes kept per connection while its answer is pending; past it the socket is read no more until then. */
export const EARLY_DATA_LIMIT = 64 * 1024;

/** What the app sends before the tunnel is answered, from its socket to each stream attached. */
export class SocketEarlyData implements EarlyData {
  readonly #socket: Socket;
  readonly #limit: number;
  #kept: Buffer[] = [];
  #keptBytes = 0;
  #ended = false;
  #detached = false;
  #stream: TunnelStream | undefined;

  constructor(socket: Socket, limit = EARLY_DATA_LIMIT) {
    this.#socket = socket;
    this.#limit = limit;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onClose);
  }

  attach(stream: TunnelStream): void {
    if (this.#detached) return;
    this.#stream = stream;
    if (this.#socket.destroyed) {
      stream.reset('the TCP connection was reset or closed without EOF');
      return;
    }
    for (const chunk of this.#kept) stream.write(chunk);
    // END_STREAM follows the early data, as FIN follows the bytes on TCP.
    if (this.#ended) stream.end();
  }

  detach(): void {
    if (this.#detached) return;
    this.#detached = true;
    this.#socket.off('data', this.#onData);
    this.#socket.off('end', this.#onEnd);
    this.#socket.off('close', this.#onClose);
    // No more 'data' until the pipe takes the socket (it resumes it).
    this.#socket.pause();
    this.#kept = [];
    this.#keptBytes = 0;
    this.#stream = undefined;
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#kept.push(chunk);
    this.#keptBytes += chunk.length;
    if (this.#stream?.writable) this.#stream.write(chunk);
    if (this.#keptBytes >= this.#limit) this.#socket.pause();
  };

  readonly #onEnd = (): void => {
    this.#ended = true;
    if (this.#stream?.writable) this.#stream.end();
  };

  readonly #onClose = (hadError: boolean): void => {
    // A reset (or a close without EOF) must reach the peer's app as one, not as an end.
    if (hadError || !this.#ended) this.#stream?.reset('the TCP connection was reset or closed without EOF');
  };
}
