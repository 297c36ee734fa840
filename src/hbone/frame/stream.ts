/**
 * One HTTP/2 stream of a framer connection as a Duplex: what is written goes out as DATA frames within
 * the peer's windows, what arrives is pushed as it comes, and the window this side grants grows back only
 * as the reader takes the bytes (so a slow reader slows its sender, never the other streams' readers
 * beyond the connection window). A stream ends clean only when END_STREAM went both ways.
 */
import { Duplex } from 'node:stream';
import type { TunnelStream } from '../transport.js';
import type { HeaderRecord } from './fields.js';
import { ErrorCode, errorName } from './protocol.js';

/** What a stream needs from its connection (implemented by FramerConnection). */
export interface StreamOwner {
  enqueueData(stream: FramerStream): void;
  streamRead(stream: FramerStream): void;
  streamDestroyed(stream: FramerStream, err: Error | null): void;
  sendResponse(stream: FramerStream, status: number, headers: HeaderRecord, endStream: boolean): void;
  sendReset(stream: FramerStream, code: number): void;
}

export interface PendingWrite {
  chunk: Buffer;
  offset: number;
  callback: ((err?: Error | null) => void) | null;
}

/**
 * A stream is its own TunnelStream: the proxy's pipe reads and writes it directly, with no second Duplex
 * (and no second buffer) around it.
 */
export class FramerStream extends Duplex implements TunnelStream {
  /** Set by the connection: send/receive windows, queued writes, protocol state. */
  sendWindow: number;
  recvWindow: number;
  readonly sendQueue: PendingWrite[] = [];
  endCallback: ((err?: Error | null) => void) | null = null;
  endQueued = false;
  /** HEADERS sent (a server stream's response; always true for a client stream). */
  headersSent: boolean;
  localEnded = false;
  remoteEnded = false;
  /** No longer in the connection's stream table (both END_STREAMs, or a reset). */
  closedByProtocol = false;
  /** Received bytes not yet granted back to the peer, per stream and for the connection. */
  pendingCredit = 0;
  connectionDebt = 0;
  readPaused = false;
  /** The peer's content-length, when it sent one, and the DATA bytes it sent so far. */
  expectedLength: number | undefined;
  receivedLength = 0;
  /** Client streams: the response status once it arrived. */
  status: number | undefined;
  responseHeaders: HeaderRecord | undefined;
  /** The RST_STREAM code, when the stream was reset (by either side). */
  rstCode: number | undefined;
  /** Why this side reset the stream, or the error it was destroyed with. */
  #failure: string | undefined;

  constructor(
    private readonly owner: StreamOwner,
    readonly id: number,
    readonly requestHeaders: HeaderRecord,
    sendWindow: number,
    recvWindow: number,
    headersSent: boolean,
    highWaterMark: number,
  ) {
    super({ highWaterMark, allowHalfOpen: true, decodeStrings: true });
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
    this.headersSent = headersSent;
    // What went wrong is `failure`; a stream nobody listens to for errors must not throw them.
    this.on('error', () => {});
  }

  /**
   * Server streams: sends the response HEADERS. By default a 2xx keeps the tunnel open and any other
   * status ends this side's half with it (a refused CONNECT). Does nothing once answered or gone.
   */
  respond(status: number, headers: HeaderRecord = {}, options: { endStream?: boolean } = {}): void {
    if (this.headersSent || !this.live) return;
    const endStream = options.endStream ?? !(status >= 200 && status < 300);
    this.owner.sendResponse(this, status, headers, endStream);
  }

  /** RST_STREAM REFUSED_STREAM: nothing was done with the stream, the client may open it elsewhere. */
  refuse(): void {
    this.reset('HBONE stream refused', ErrorCode.REFUSED_STREAM);
  }

  /**
   * Ends the stream abruptly: RST_STREAM `code` alone (never after an END_STREAM of this side's choosing),
   * so the peer hands its app an error, not an end. CONNECT_ERROR by default, as RFC 9113 §8.5 asks of a
   * tunnel whose TCP connection broke. `reason` becomes this side's `failure`.
   */
  reset(reason: string, code: number = ErrorCode.CONNECT_ERROR): void {
    if (this.destroyed) return;
    this.#failure ??= reason;
    if (!this.closedByProtocol) this.owner.sendReset(this, code);
    this.destroy();
  }

  /** False once the stream can carry nothing more: reset, closed both ways, or its connection gone. */
  get live(): boolean {
    return !this.destroyed && !this.closedByProtocol;
  }

  get responded(): boolean {
    return this.headersSent;
  }

  /**
   * Why the tunnel did not end cleanly (undefined while live and after END_STREAM went both ways): this
   * side's reset reason, the error the stream failed with, the peer's reset code, or a missing end.
   */
  get failure(): string | undefined {
    if (this.live) return undefined;
    if (this.#failure !== undefined) return this.#failure;
    if (this.rstCode !== undefined && this.rstCode !== ErrorCode.NO_ERROR)
      return `HBONE stream reset (${errorName(this.rstCode)})`;
    if (!this.remoteEnded) return 'HBONE stream ended before the peer finished sending';
    if (!this.localEnded) return 'HBONE stream ended before this side finished sending';
    return undefined;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.sendQueue.push({ chunk, offset: 0, callback });
    this.owner.enqueueData(this);
  }

  override _writev(
    chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>,
    callback: (err?: Error | null) => void,
  ): void {
    const last = chunks.length - 1;
    chunks.forEach(({ chunk }, i) => {
      this.sendQueue.push({ chunk, offset: 0, callback: i === last ? callback : null });
    });
    this.owner.enqueueData(this);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.endQueued = true;
    this.endCallback = callback;
    this.owner.enqueueData(this);
  }

  override _read(): void {
    this.owner.streamRead(this);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    if (err) this.#failure ??= err.message;
    this.owner.streamDestroyed(this, err);
    // Made only when a write is still waiting: an Error captures a stack, and most streams end with none.
    if (this.sendQueue.length > 0 || this.endCallback) {
      const failure = err ?? new Error('stream destroyed');
      for (const w of this.sendQueue.splice(0)) w.callback?.(failure);
      const cb = this.endCallback;
      this.endCallback = null;
      cb?.(failure);
    }
    callback(err);
  }
}
