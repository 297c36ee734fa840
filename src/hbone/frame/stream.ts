/**
 * One HTTP/2 stream of a framer connection as a Duplex: what is written goes out as DATA frames within
 * the peer's windows, what arrives is pushed as it comes, and the window this side grants grows back only
 * as the reader takes the bytes (so a slow reader slows its sender, never the other streams' readers
 * beyond the connection window). A stream ends clean only when END_STREAM went both ways.
 */
import { Duplex } from 'node:stream';
import type { HeaderRecord } from './fields.js';
import { ErrorCode } from './protocol.js';

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

export class FramerStream extends Duplex {
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
  /** Client streams: the response status once it arrived. */
  status: number | undefined;
  responseHeaders: HeaderRecord | undefined;
  /** The RST_STREAM code, when the stream was reset (by either side). */
  rstCode: number | undefined;

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
  }

  /** Server streams: sends the response HEADERS; with endStream, the stream's sending half ends too. */
  respond(status: number, headers: HeaderRecord = {}, options: { endStream?: boolean } = {}): void {
    if (this.headersSent) throw new Error('response already sent');
    this.owner.sendResponse(this, status, headers, options.endStream ?? false);
  }

  /** Ends the stream abruptly with RST_STREAM `code` (default CANCEL). */
  reset(code: number = ErrorCode.CANCEL): void {
    if (!this.closedByProtocol) this.owner.sendReset(this, code);
    this.destroy();
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
    this.owner.streamDestroyed(this, err);
    const failure = err ?? new Error('stream destroyed');
    for (const w of this.sendQueue.splice(0)) w.callback?.(failure);
    if (this.endCallback) {
      const cb = this.endCallback;
      this.endCallback = null;
      cb(failure);
    }
    callback(err);
  }
}
