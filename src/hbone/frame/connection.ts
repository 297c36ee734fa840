/**
 * A purpose-built HTTP/2 connection for HBONE's subset (RFC 9113): CONNECT streams, DATA with flow control,
 * WINDOW_UPDATE, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS/CONTINUATION with HPACK. Client or server over
 * any Duplex (a tls.TLSSocket in production).
 *
 * Why not node:http2 (ambit's first transport, removed once this one measured faster on every figure):
 * it stops reading its socket while a write is pending, which deadlocks two of them under bidirectional
 * bulk with Istio's 16 MiB connection window. This connection always reads; what it must then bound
 * instead (floods, header sizes, queued answers) is in limits.ts.
 *
 * Writes are batched: frames queued by one callback collect in `out` and go to the socket in one writev
 * from a process.nextTick. Deferring to setImmediate (to merge the frames of several I/O callbacks) was
 * measured slower: +15 % latency per new connection, no CPU saved.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { CONNECTION_WINDOW, MAX_FRAME_SIZE, STREAM_WINDOW } from '../settings.js';
import {
  ConnectionError,
  FrameReader,
  frameHeader,
  goawayFrame,
  headersFrames,
  parseSettings,
  pingFrame,
  rstStreamFrame,
  SETTINGS_ACK,
  settingsFrame,
  unpad,
  windowUpdateFrame,
} from './codec.js';
import { framerError } from './errors.js';
import { type HeaderRecord, requestFields, responseFields, toList, trailerFields } from './fields.js';
import { encodeHeaders, HpackDecoder, HpackError } from './hpack.js';
import { DEFAULT_LIMITS, type FramerLimits, TokenBucket } from './limits.js';
import {
  DEFAULT_WINDOW,
  ErrorCode,
  errorName,
  Flag,
  FrameType,
  MAX_MAX_FRAME_SIZE,
  MAX_WINDOW,
  PREFACE,
  PROTOCOL_DEFAULTS,
  SettingId,
  type Settings,
} from './protocol.js';
import { FramerStream, type StreamOwner } from './stream.js';

export interface FramerOptions {
  /** What this side announces; defaults below. */
  settings?: Partial<Settings>;
  /** The receive window of the whole connection (raised from 65,535 by WINDOW_UPDATE at start). */
  connectionWindow?: number;
  limits?: Partial<FramerLimits>;
  /** How long the peer's preface and SETTINGS may take; its SETTINGS ACK as long (SETTINGS_TIMEOUT). */
  handshakeTimeoutMs?: number;
  /** PING keepalive; false for none. */
  keepalive?: { intervalMs: number; timeoutMs: number } | false;
  /** highWaterMark of each stream (both sides). */
  streamHighWaterMark?: number;
  /** Bytes of frames collected before the pump waits for the next turn. */
  batchBytes?: number;
}

const DEFAULT_SETTINGS: Settings = {
  headerTableSize: 4096,
  enablePush: false,
  maxConcurrentStreams: 100,
  initialWindowSize: STREAM_WINDOW,
  maxFrameSize: MAX_FRAME_SIZE,
  maxHeaderListSize: 64 * 1024,
};

type Role = 'client' | 'server';

interface HeaderBlock {
  streamId: number;
  endStream: boolean;
  parts: Buffer[];
  bytes: number;
  frames: number;
}

export interface FramerConnectionEvents {
  stream: [stream: FramerStream, headers: HeaderRecord];
  remoteSettings: [settings: Settings];
  goaway: [code: number, lastStreamId: number];
  idle: [];
  close: [err: Error | undefined];
}

export class FramerConnection extends EventEmitter<FramerConnectionEvents> implements StreamOwner {
  readonly localSettings: Settings;
  readonly remoteSettings: Settings = { ...PROTOCOL_DEFAULTS };
  readonly streams = new Map<number, FramerStream>();
  private readonly limits: FramerLimits;
  private readonly reader: FrameReader;
  private readonly decoder: HpackDecoder;
  private readonly streamHighWaterMark: number;
  private readonly batchBytes: number;

  // Flow control: what the peer lets us send on the connection, and what we still accept.
  private sendWindow = DEFAULT_WINDOW;
  private recvWindow: number;
  private readonly connectionWindow: number;
  private pendingConnectionCredit = 0;

  // Stream ids.
  private nextLocalId: number;
  private lastPeerId = 0;
  private readonly recentlyReset = new Set<number>();

  // Handshake.
  private prefaceLeft: number;
  private remoteSettingsSeen = false;
  private settingsAckTimers: NodeJS.Timeout[] = [];
  private handshakeTimer: NodeJS.Timeout | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private pingDeadline: NodeJS.Timeout | undefined;

  // Header block in progress (HEADERS without END_HEADERS, then CONTINUATION).
  private block: HeaderBlock | null = null;
  // The DATA frame being read: its stream (null when discarded) and bytes delivered so far.
  private dataStream: FramerStream | null = null;
  private dataLength = 0;
  private dataDelivered = 0;

  // Output.
  private out: Buffer[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  private waitingDrain = false;
  private readonly ready = new Set<FramerStream>();
  private pumping = false;

  // Limits.
  private readonly resets: TokenBucket;
  private readonly pings: TokenBucket;
  private readonly settingsFrames: TokenBucket;
  private readonly emptyData: TokenBucket;

  /** GOAWAY: sent (with the last peer stream we process) / received (with the peer's). */
  private goawaySent = false;
  private goawayLastId = MAX_WINDOW;
  goawayReceived: { code: number; lastStreamId: number } | undefined;
  closed = false;
  private closeError: Error | undefined;

  constructor(
    readonly socket: Duplex,
    readonly role: Role,
    options: FramerOptions = {},
  ) {
    super();
    this.localSettings = { ...DEFAULT_SETTINGS, ...options.settings };
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.connectionWindow = options.connectionWindow ?? CONNECTION_WINDOW;
    this.recvWindow = DEFAULT_WINDOW;
    this.streamHighWaterMark = options.streamHighWaterMark ?? 1024 * 1024;
    this.batchBytes = options.batchBytes ?? 512 * 1024;
    this.nextLocalId = role === 'client' ? 1 : 2;
    this.handshakeMs = options.handshakeTimeoutMs ?? 10_000;
    this.prefaceLeft = role === 'server' ? PREFACE.length : 0;
    this.decoder = new HpackDecoder(this.localSettings.headerTableSize);
    this.reader = new FrameReader(this, this.localSettings.maxFrameSize);
    const l = this.limits;
    this.resets = new TokenBucket(l.resetBurst, l.resetRefillPerSecond);
    this.pings = new TokenBucket(l.pingBurst, l.pingRefillPerSecond);
    this.settingsFrames = new TokenBucket(l.settingsBurst, l.settingsRefillPerSecond);
    this.emptyData = new TokenBucket(l.emptyDataBurst, l.emptyDataRefillPerSecond);

    socket.on('data', (chunk: Buffer) => this.onSocketData(chunk));
    socket.on('drain', () => {
      // The socket took the last batch: the next goes now, not a turn later (the pipe stays full).
      this.waitingDrain = false;
      this.pump();
      if (this.outBytes > 0) this.flush();
    });
    socket.on('end', () =>
      this.teardown(this.goawayReceived || this.streams.size === 0 ? undefined : eofError()),
    );
    socket.on('error', (err: Error) => this.teardown(err));
    socket.on('close', () => this.teardown(undefined));

    // Our preface (client), SETTINGS, and the connection window.
    if (role === 'client') this.queue(PREFACE);
    this.sendSettings(this.localSettings);
    if (this.connectionWindow > DEFAULT_WINDOW) {
      this.queue(windowUpdateFrame(0, this.connectionWindow - DEFAULT_WINDOW));
      this.recvWindow = this.connectionWindow;
    }
    const handshakeMs = this.handshakeMs;
    this.handshakeTimer = setTimeout(() => {
      if (!this.remoteSettingsSeen)
        this.destroy(
          framerError('ERR_H2_HANDSHAKE', `no HTTP/2 SETTINGS from the peer within ${handshakeMs}ms`),
        );
    }, handshakeMs);
    this.handshakeTimer.unref();
    const keepalive = options.keepalive ?? { intervalMs: 10_000, timeoutMs: 20_000 };
    if (keepalive) this.startKeepalive(keepalive.intervalMs, keepalive.timeoutMs);
  }

  private readonly handshakeMs: number;

  // ---------------------------------------------------------------------------------------------- API

  /** False once the connection is closed or going away (a GOAWAY either way): no new stream here. */
  get acceptsStreams(): boolean {
    return !this.closed && !this.goawaySent && !this.goawayReceived;
  }

  /** Streams this side may still open now (the peer's MAX_CONCURRENT_STREAMS minus ours in use). */
  get availableStreams(): number {
    if (this.closed || this.goawaySent || this.goawayReceived || this.nextLocalId > MAX_WINDOW) return 0;
    let mine = 0;
    for (const id of this.streams.keys()) if ((id & 1) === (this.role === 'client' ? 1 : 0)) mine++;
    return Math.max(0, Math.min(this.remoteSettings.maxConcurrentStreams - mine, 2 ** 30));
  }

  /** Client: opens a stream with request HEADERS (a CONNECT: `:method` and `:authority`). */
  request(headers: HeaderRecord, options: { endStream?: boolean } = {}): FramerStream {
    if (this.role !== 'client') throw new Error('only a client connection sends requests');
    if (this.closed || this.goawaySent || this.goawayReceived)
      throw framerError('ERR_H2_CLOSED', 'HTTP/2 connection closed or going away');
    if (this.availableStreams <= 0)
      throw framerError('ERR_H2_STREAM_LIMIT', 'the peer allows no more concurrent streams');
    const id = this.nextLocalId;
    this.nextLocalId += 2;
    const stream = this.newStream(id, headers, true);
    this.streams.set(id, stream);
    const endStream = options.endStream ?? false;
    for (const f of headersFrames(
      id,
      encodeHeaders(toList(headers)),
      endStream,
      this.remoteSettings.maxFrameSize,
    ))
      this.queue(f);
    if (endStream) {
      stream.localEnded = true;
      stream.end();
    }
    return stream;
  }

  /** A stream with the windows both sides announced; `headersSent` for a client's (its request went out). */
  private newStream(id: number, headers: HeaderRecord, headersSent: boolean): FramerStream {
    return new FramerStream(
      this,
      id,
      headers,
      this.remoteSettings.initialWindowSize,
      this.localSettings.initialWindowSize,
      headersSent,
      this.streamHighWaterMark,
    );
  }

  /** Sends a PING; resolves with the round trip in milliseconds. */
  ping(): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(framerError('ERR_H2_CLOSED', 'HTTP/2 connection closed'));
      const payload = Buffer.allocUnsafe(8);
      const start = process.hrtime.bigint();
      payload.writeBigUInt64BE(start);
      this.pingWaiters.set(payload.toString('hex'), { resolve: () => resolve(elapsedMs(start)), reject });
      this.queue(pingFrame(payload, false));
    });
  }

  private readonly pingWaiters = new Map<string, { resolve: () => void; reject: (err: Error) => void }>();

  /**
   * Graceful close: GOAWAY(NO_ERROR) naming the last peer stream this side will process; open streams
   * finish, new ones are refused; the socket ends when the last stream is done.
   */
  close(): void {
    if (this.closed) return;
    if (!this.goawaySent) this.sendGoaway(ErrorCode.NO_ERROR, '');
    this.maybeFinish();
  }

  /** Abrupt close: open streams are reset with `err`; GOAWAY carries `code`. */
  destroy(err?: Error, code: number = err ? ErrorCode.INTERNAL_ERROR : ErrorCode.NO_ERROR): void {
    if (this.closed) return;
    if (!this.goawaySent) this.sendGoaway(code, err?.message ?? '');
    this.flush();
    this.teardown(err);
    this.socket.end();
    // The socket gets a moment to carry the GOAWAY out, then goes.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  // ------------------------------------------------------------------------------------- reading

  private onSocketData(chunk: Buffer): void {
    if (this.closed) return;
    try {
      if (this.prefaceLeft > 0) {
        const take = Math.min(this.prefaceLeft, chunk.length);
        const offset = PREFACE.length - this.prefaceLeft;
        if (!chunk.subarray(0, take).equals(PREFACE.subarray(offset, offset + take)))
          throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'invalid connection preface');
        this.prefaceLeft -= take;
        chunk = chunk.subarray(take);
        if (chunk.length === 0) return;
      }
      this.reader.push(chunk);
    } catch (err) {
      this.onReadError(err);
    }
  }

  private onReadError(err: unknown): void {
    if (err instanceof ConnectionError) this.connectionError(err.code, err.message);
    else if (err instanceof HpackError) this.connectionError(ErrorCode.COMPRESSION_ERROR, err.message);
    else this.connectionError(ErrorCode.INTERNAL_ERROR, err instanceof Error ? err.message : String(err));
  }

  /** A connection error of ours: GOAWAY with the code, everything closes. */
  private connectionError(code: number, message: string): void {
    this.destroy(framerError('ERR_H2_CONNECTION', `HTTP/2 ${errorName(code)}: ${message}`, code), code);
  }

  private expectNoBlock(type: number): void {
    if (this.block && type !== FrameType.CONTINUATION)
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'frame in the middle of a header block');
  }

  private expectSettingsFirst(type: number, flags: number): void {
    if (!this.remoteSettingsSeen && !(type === FrameType.SETTINGS && !(flags & Flag.ACK)))
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'first frame is not SETTINGS');
  }

  dataBegin(streamId: number, flags: number, length: number): void {
    this.expectSettingsFirst(FrameType.DATA, flags);
    this.expectNoBlock(FrameType.DATA);
    if (streamId === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on stream 0');
    this.recvWindow -= length;
    if (this.recvWindow < 0)
      throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'connection window exceeded');
    if (length === 0 && !(flags & Flag.END_STREAM) && !this.emptyData.take())
      throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, 'flood of empty DATA frames');
    this.dataLength = length;
    this.dataDelivered = 0;
    this.dataStream = null;
    const stream = this.streams.get(streamId);
    if (!stream) {
      this.checkNotIdle(streamId, 'DATA');
      this.creditConnection(length);
      this.streamClosedFrame(streamId);
      return;
    }
    if (stream.remoteEnded || (this.role === 'client' && stream.status === undefined)) {
      this.creditConnection(length);
      this.streamError(stream, stream.remoteEnded ? ErrorCode.STREAM_CLOSED : ErrorCode.PROTOCOL_ERROR);
      return;
    }
    stream.recvWindow -= length;
    if (stream.recvWindow < 0) {
      this.creditConnection(length);
      this.streamError(stream, ErrorCode.FLOW_CONTROL_ERROR);
      return;
    }
    stream.connectionDebt += length;
    this.dataStream = stream;
  }

  dataChunk(_streamId: number, chunk: Buffer): void {
    const stream = this.dataStream;
    if (!stream) return;
    stream.receivedLength += chunk.length;
    if (stream.expectedLength !== undefined && stream.receivedLength > stream.expectedLength) {
      // More body than the content-length announced: malformed (RFC 9113 §8.1.1). The frame's window
      // comes back with the stream's debt when the reset forgets it.
      this.dataStream = null;
      this.streamError(stream, ErrorCode.PROTOCOL_ERROR);
      return;
    }
    this.dataDelivered += chunk.length;
    stream.pendingCredit += chunk.length;
    if (!stream.push(chunk)) stream.readPaused = true;
    if (!stream.readPaused) this.grant(stream);
  }

  dataEnd(_streamId: number, flags: number): void {
    const stream = this.dataStream;
    this.dataStream = null;
    if (!stream) return;
    // Padding is never read by anyone: granted back at once.
    const padding = this.dataLength - this.dataDelivered;
    if (padding > 0) {
      stream.pendingCredit += padding;
      if (!stream.readPaused) this.grant(stream);
    }
    if (flags & Flag.END_STREAM) this.remoteEnd(stream);
  }

  frame(type: number, flags: number, streamId: number, payload: Buffer): void {
    this.expectSettingsFirst(type, flags);
    this.expectNoBlock(type);
    switch (type) {
      case FrameType.HEADERS: {
        this.onHeaders(flags, streamId, payload);
        return;
      }
      case FrameType.CONTINUATION: {
        this.onContinuation(flags, streamId, payload);
        return;
      }
      case FrameType.PRIORITY:
        if (streamId === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (payload.length !== 5) {
          this.resetUnknown(streamId, ErrorCode.FRAME_SIZE_ERROR);
          return;
        }
        if ((payload.readUInt32BE(0) & MAX_WINDOW) === streamId) {
          this.resetUnknown(streamId, ErrorCode.PROTOCOL_ERROR);
          return;
        }
        return;
      case FrameType.RST_STREAM: {
        this.onRstStream(streamId, payload);
        return;
      }
      case FrameType.SETTINGS: {
        this.onSettings(flags, streamId, payload);
        return;
      }
      case FrameType.PUSH_PROMISE:
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE (push is disabled)');
      case FrameType.PING: {
        this.onPing(flags, streamId, payload);
        return;
      }
      case FrameType.GOAWAY: {
        this.onGoaway(streamId, payload);
        return;
      }
      case FrameType.WINDOW_UPDATE: {
        this.onWindowUpdate(streamId, payload);
        return;
      }
      default:
        return; // unknown frame types are ignored (RFC 9113 §4.1)
    }
  }

  private isLocalId(streamId: number): boolean {
    return (streamId & 1) === (this.role === 'client' ? 1 : 0);
  }

  /** A frame that needs an opened stream, on a stream never opened: PROTOCOL_ERROR (RFC 9113 §5.1). */
  private checkNotIdle(streamId: number, what: string): void {
    const idle = this.isLocalId(streamId) ? streamId >= this.nextLocalId : streamId > this.lastPeerId;
    if (idle) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `${what} on idle stream ${streamId}`);
  }

  /** A frame for a closed stream: ignored if this side reset it lately, else answered STREAM_CLOSED. */
  private streamClosedFrame(streamId: number): void {
    if (this.recentlyReset.has(streamId)) return;
    this.sendRst(streamId, ErrorCode.STREAM_CLOSED);
  }

  private resetUnknown(streamId: number, code: number): void {
    const stream = this.streams.get(streamId);
    if (stream) this.streamError(stream, code);
    else this.sendRst(streamId, code);
  }

  private onHeaders(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'HEADERS on stream 0');
    let fragment = unpad(payload, flags);
    if (flags & Flag.PRIORITY) {
      if (fragment.length < 5)
        throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'HEADERS priority truncated');
      const dependency = fragment.readUInt32BE(0) & MAX_WINDOW;
      fragment = fragment.subarray(5);
      if (dependency === streamId) {
        // Still decoded below (HPACK state), then the stream is reset.
        this.dependsOnItself = streamId;
      }
    }
    this.block = {
      streamId,
      endStream: (flags & Flag.END_STREAM) !== 0,
      parts: [fragment],
      bytes: fragment.length,
      frames: 1,
    };
    this.checkBlockLimits(this.block);
    if (flags & Flag.END_HEADERS) this.completeBlock();
  }

  private dependsOnItself = 0;

  private onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const block = this.block;
    if (!block || block.streamId !== streamId)
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'CONTINUATION without HEADERS on its stream');
    block.parts.push(payload);
    block.bytes += payload.length;
    block.frames++;
    this.checkBlockLimits(block);
    if (flags & Flag.END_HEADERS) this.completeBlock();
  }

  private checkBlockLimits(block: HeaderBlock): void {
    if (block.frames > this.limits.maxContinuations + 1 || block.bytes > this.limits.maxHeaderBlockBytes)
      throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, 'header block too large (CONTINUATION flood)');
  }

  private completeBlock(): void {
    const block = this.block!;
    this.block = null;
    const encoded = block.parts.length === 1 ? block.parts[0]! : Buffer.concat(block.parts);
    // Always decoded: the peer's encoder state must stay in step even for a block this side refuses.
    const { headers: list, tooLarge } = this.decoder.decode(encoded, this.localSettings.maxHeaderListSize);
    const id = block.streamId;
    const selfDependent = this.dependsOnItself === id;
    this.dependsOnItself = 0;
    const existing = this.streams.get(id);
    if (existing) {
      if (selfDependent) {
        this.streamError(existing, ErrorCode.PROTOCOL_ERROR);
        return;
      }
      this.onStreamHeaders(existing, list, block.endStream, tooLarge);
      return;
    }
    if (this.isLocalId(id)) {
      // A response on a stream we do not have: closed (answered) or never opened (an error).
      if (this.role === 'client' && (id & 1) === 0)
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'HEADERS on a server-initiated stream');
      this.checkNotIdle(id, 'HEADERS');
      this.streamClosedFrame(id);
      return;
    }
    if (this.role === 'client')
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'server-initiated stream');
    if (id <= this.lastPeerId) {
      if (this.recentlyReset.has(id)) return;
      throw new ConnectionError(ErrorCode.STREAM_CLOSED, `HEADERS on closed stream ${id}`);
    }
    this.lastPeerId = id;
    if (this.goawaySent && id > this.goawayLastId) return; // beyond our GOAWAY: ignored (RFC 9113 §6.8)
    if (selfDependent) {
      this.sendRst(id, ErrorCode.PROTOCOL_ERROR);
      return;
    }
    let open = 0;
    for (const sid of this.streams.keys()) if (!this.isLocalId(sid)) open++;
    if (open >= this.localSettings.maxConcurrentStreams) {
      this.sendRst(id, ErrorCode.REFUSED_STREAM);
      return;
    }
    if (tooLarge) {
      // RFC 9113 §10.5.1: 431, then the stream ends (this side no longer wants the request body).
      for (const f of headersFrames(
        id,
        encodeHeaders([[':status', '431']]),
        true,
        this.remoteSettings.maxFrameSize,
      ))
        this.queue(f);
      this.sendRst(id, ErrorCode.NO_ERROR);
      return;
    }
    const { headers, error } = requestFields(list);
    const length = contentLength(headers);
    if (error || length === null) {
      this.sendRst(id, ErrorCode.PROTOCOL_ERROR);
      return;
    }
    const stream = this.newStream(id, headers, false);
    stream.expectedLength = length;
    this.streams.set(id, stream);
    if (block.endStream && !this.remoteEnd(stream)) return;
    this.emit('stream', stream, headers);
  }

  /** HEADERS on an open stream: a client's response (1xx skipped), or trailers. */
  private onStreamHeaders(
    stream: FramerStream,
    list: Array<[string, string]>,
    endStream: boolean,
    tooLarge: boolean,
  ) {
    if (stream.remoteEnded) {
      this.streamError(stream, ErrorCode.STREAM_CLOSED);
      return;
    }
    if (tooLarge) {
      this.streamError(stream, ErrorCode.PROTOCOL_ERROR);
      return;
    }
    if (this.role === 'client' && stream.status === undefined) {
      const { headers, error, status } = responseFields(list);
      if (error) {
        this.streamError(stream, ErrorCode.PROTOCOL_ERROR);
        return;
      }
      if (status < 200) {
        if (endStream) {
          this.streamError(stream, ErrorCode.PROTOCOL_ERROR);
          return;
        }
        return;
      }
      // A tunnel's 2xx has no content-length (RFC 9113 §8.5); any other response's must hold.
      const tunnel = stream.requestHeaders[':method'] === 'CONNECT' && status < 300;
      const length = tunnel ? undefined : contentLength(headers);
      if (length === null) {
        this.streamError(stream, ErrorCode.PROTOCOL_ERROR);
        return;
      }
      stream.expectedLength = length;
      stream.status = status;
      stream.responseHeaders = headers;
      stream.emit('response', status, headers);
    } else {
      // Trailers: they must end the stream.
      const { error } = trailerFields(list);
      if (error || !endStream) {
        this.streamError(stream, ErrorCode.PROTOCOL_ERROR);
        return;
      }
    }
    if (endStream) this.remoteEnd(stream);
  }

  private onRstStream(streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (payload.length !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'RST_STREAM length');
    this.checkNotIdle(streamId, 'RST_STREAM');
    const stream = this.streams.get(streamId);
    // Rapid reset costs a server the work of streams the client cancels before they are answered; a
    // client resetting tunnels that are open and flowing (its apps' connections breaking) is not abuse.
    if (!stream?.headersSent && !this.resets.take())
      throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, 'too many RST_STREAM frames (rapid reset)');
    if (!stream) return;
    const code = payload.readUInt32BE(0);
    stream.rstCode = code;
    this.forgetStream(stream);
    if (code === ErrorCode.NO_ERROR && stream.remoteEnded) {
      // The peer is done and wants nothing more from us: the sending half ends here.
      stream.destroy();
      return;
    }
    const refused = code === ErrorCode.REFUSED_STREAM;
    stream.destroy(
      framerError(
        refused ? 'ERR_HBONE_REFUSED' : 'ERR_HBONE_STREAM_RESET',
        `HTTP/2 stream ${streamId} reset by the peer: ${errorName(code)}`,
        code,
      ),
    );
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & Flag.ACK) {
      if (payload.length !== 0)
        throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ACK with payload');
      const timer = this.settingsAckTimers.shift();
      if (timer) clearTimeout(timer);
      return;
    }
    const entries = parseSettings(payload);
    if (!this.settingsFrames.take()) throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, 'SETTINGS flood');
    const s = this.remoteSettings;
    for (const [id, value] of entries) {
      switch (id) {
        case SettingId.HEADER_TABLE_SIZE:
          // The encoder never uses the dynamic table, so any size suits it.
          s.headerTableSize = value;
          break;
        case SettingId.ENABLE_PUSH:
          if (value > 1) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'ENABLE_PUSH not 0 or 1');
          if (value === 1 && this.role === 'client')
            throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'a server set ENABLE_PUSH');
          s.enablePush = value === 1;
          break;
        case SettingId.MAX_CONCURRENT_STREAMS:
          s.maxConcurrentStreams = value;
          break;
        case SettingId.INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW)
            throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'INITIAL_WINDOW_SIZE too large');
          const delta = value - s.initialWindowSize;
          s.initialWindowSize = value;
          for (const stream of this.streams.values()) {
            stream.sendWindow += delta;
            if (stream.sendWindow > MAX_WINDOW)
              throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'stream window above 2^31-1');
            if (delta > 0 && stream.sendWindow > 0) this.markReady(stream);
          }
          break;
        }
        case SettingId.MAX_FRAME_SIZE:
          if (value < 16_384 || value > MAX_MAX_FRAME_SIZE)
            throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'MAX_FRAME_SIZE out of range');
          s.maxFrameSize = value;
          break;
        case SettingId.MAX_HEADER_LIST_SIZE:
          s.maxHeaderListSize = value;
          break;
        default:
          break; // unknown settings are ignored
      }
    }
    this.queue(SETTINGS_ACK);
    if (!this.remoteSettingsSeen) {
      this.remoteSettingsSeen = true;
      clearTimeout(this.handshakeTimer);
    }
    this.emit('remoteSettings', s);
    this.pump();
  }

  private onPing(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PING on a stream');
    if (payload.length !== 8) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'PING length');
    if (flags & Flag.ACK) {
      const key = payload.toString('hex');
      const waiter = this.pingWaiters.get(key);
      if (waiter) {
        this.pingWaiters.delete(key);
        waiter.resolve();
      }
      return;
    }
    if (!this.pings.take()) throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, 'PING flood');
    this.queue(pingFrame(payload, true));
  }

  private onGoaway(streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (payload.length < 8) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'GOAWAY length');
    const lastStreamId = payload.readUInt32BE(0) & MAX_WINDOW;
    const code = payload.readUInt32BE(4);
    this.goawayReceived = { code, lastStreamId };
    // Our streams the peer never processed are refused: safe to retry elsewhere.
    for (const stream of [...this.streams.values()]) {
      if (this.isLocalId(stream.id) && stream.id > lastStreamId) {
        this.forgetStream(stream);
        stream.destroy(
          framerError(
            'ERR_HBONE_REFUSED',
            `HTTP/2 stream ${stream.id} beyond the peer's GOAWAY`,
            ErrorCode.REFUSED_STREAM,
          ),
        );
      }
    }
    this.emit('goaway', code, lastStreamId);
    if (!this.goawaySent) this.sendGoaway(ErrorCode.NO_ERROR, '');
    this.maybeFinish();
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'WINDOW_UPDATE length');
    const increment = payload.readUInt32BE(0) & MAX_WINDOW;
    if (streamId === 0) {
      if (increment === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW)
        throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'connection window above 2^31-1');
      this.pump();
      return;
    }
    const stream = this.streams.get(streamId);
    if (!stream) {
      this.checkNotIdle(streamId, 'WINDOW_UPDATE');
      return; // closed: late updates are expected
    }
    if (increment === 0) {
      this.streamError(stream, ErrorCode.PROTOCOL_ERROR);
      return;
    }
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) {
      this.streamError(stream, ErrorCode.FLOW_CONTROL_ERROR);
      return;
    }
    if (stream.sendWindow > 0) {
      this.markReady(stream);
      this.pump();
    }
  }

  /**
   * The peer sent END_STREAM: the readable half ends; the stream closes if ours ended too. A body shorter
   * than its content-length is malformed (RFC 9113 §8.1.1): a stream error instead, and false.
   */
  private remoteEnd(stream: FramerStream): boolean {
    if (stream.expectedLength !== undefined && stream.receivedLength !== stream.expectedLength) {
      this.streamError(stream, ErrorCode.PROTOCOL_ERROR);
      return false;
    }
    stream.remoteEnded = true;
    stream.push(null);
    if (stream.localEnded) this.forgetStream(stream);
    return true;
  }

  // ------------------------------------------------------------------------------ flow control (receive)

  /** Grants back what the reader took, in updates of a quarter window (fewer frames, no stalls). */
  private grant(stream: FramerStream): void {
    const credit = stream.pendingCredit;
    if (credit === 0) return;
    if (
      !stream.closedByProtocol &&
      !stream.remoteEnded &&
      credit >= this.localSettings.initialWindowSize / 4
    ) {
      stream.pendingCredit = 0;
      stream.recvWindow += credit;
      this.queue(windowUpdateFrame(stream.id, credit));
    }
    const debt = stream.connectionDebt;
    if (debt >= 64 * 1024 || stream.remoteEnded) {
      stream.connectionDebt = 0;
      this.creditConnection(debt);
    }
  }

  private creditConnection(bytes: number): void {
    if (bytes <= 0) return;
    this.pendingConnectionCredit += bytes;
    if (this.pendingConnectionCredit >= this.connectionWindow / 8) {
      this.recvWindow += this.pendingConnectionCredit;
      this.queue(windowUpdateFrame(0, this.pendingConnectionCredit));
      this.pendingConnectionCredit = 0;
    }
  }

  streamRead(stream: FramerStream): void {
    if (!stream.readPaused) return;
    stream.readPaused = false;
    this.grant(stream);
  }

  // ------------------------------------------------------------------------------ sending

  sendResponse(stream: FramerStream, status: number, headers: HeaderRecord, endStream: boolean): void {
    if (stream.closedByProtocol) return;
    const list = toList({ ...headers, ':status': String(status) });
    for (const f of headersFrames(
      stream.id,
      encodeHeaders(list),
      endStream,
      this.remoteSettings.maxFrameSize,
    ))
      this.queue(f);
    stream.headersSent = true;
    if (endStream) {
      stream.localEnded = true;
      if (stream.remoteEnded) this.forgetStream(stream);
      stream.end();
    } else this.markReady(stream);
    this.pump();
  }

  sendReset(stream: FramerStream, code: number): void {
    if (stream.closedByProtocol) return;
    stream.rstCode = code;
    this.sendRst(stream.id, code);
    this.forgetStream(stream);
  }

  /** A stream error (RFC 9113 §5.4.2): RST_STREAM, and the stream fails. */
  private streamError(stream: FramerStream, code: number): void {
    this.sendReset(stream, code);
    stream.destroy(
      framerError('ERR_HBONE_STREAM_RESET', `HTTP/2 stream ${stream.id}: ${errorName(code)}`, code),
    );
  }

  private sendRst(streamId: number, code: number): void {
    this.queue(rstStreamFrame(streamId, code));
    this.recentlyReset.add(streamId);
    if (this.recentlyReset.size > this.limits.rememberedResets) {
      const oldest = this.recentlyReset.values().next().value;
      if (oldest !== undefined) this.recentlyReset.delete(oldest);
    }
  }

  streamDestroyed(stream: FramerStream): void {
    // An application's destroy of a stream still open: the peer learns with RST_STREAM CANCEL.
    if (!stream.closedByProtocol) this.sendReset(stream, ErrorCode.CANCEL);
    this.ready.delete(stream);
  }

  enqueueData(stream: FramerStream): void {
    this.markReady(stream);
    this.pump();
  }

  private markReady(stream: FramerStream): void {
    if (stream.sendQueue.length > 0 || stream.endQueued) this.ready.add(stream);
  }

  /** Frames queued writes into `out` while windows and the batch allow, round robin over streams. */
  private pump(): void {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    try {
      while (this.ready.size > 0 && !this.congested()) {
        let progressed = false;
        for (const stream of this.ready) {
          if (this.congested()) break;
          if (this.sendSome(stream)) progressed = true;
        }
        if (!progressed) break;
      }
    } finally {
      this.pumping = false;
    }
  }

  private congested(): boolean {
    return this.waitingDrain || this.outBytes >= this.batchBytes;
  }

  /** One frame's worth from `stream`; false when it could send nothing. */
  private sendSome(stream: FramerStream): boolean {
    if (stream.closedByProtocol) {
      // Nothing more goes out on a closed stream: writes fail, an end is simply done.
      this.ready.delete(stream);
      const closedErr = framerError('ERR_HBONE_STREAM_RESET', `HTTP/2 stream ${stream.id} is closed`);
      for (const w of stream.sendQueue.splice(0)) w.callback?.(closedErr);
      const cb = stream.endCallback;
      stream.endCallback = null;
      cb?.();
      return false;
    }
    if (!stream.headersSent) {
      this.ready.delete(stream);
      return false;
    }
    const head = stream.sendQueue[0];
    if (!head) {
      this.ready.delete(stream);
      if (!stream.endQueued) return false;
      if (!stream.localEnded) {
        this.queue(frameHeader(0, FrameType.DATA, Flag.END_STREAM, stream.id));
        stream.localEnded = true;
        if (stream.remoteEnded) this.forgetStream(stream);
      }
      const cb = stream.endCallback;
      stream.endCallback = null;
      cb?.();
      return cb !== null;
    }
    const window = Math.min(stream.sendWindow, this.sendWindow);
    if (window <= 0) {
      if (stream.sendWindow <= 0) this.ready.delete(stream); // back on its WINDOW_UPDATE
      return false;
    }
    let budget = Math.min(window, this.remoteSettings.maxFrameSize);
    // One DATA frame, possibly from several queued chunks (one header, the chunks' slices after it).
    const slices: Buffer[] = [];
    let size = 0;
    const done: Array<(err?: Error | null) => void> = [];
    while (budget > 0) {
      const w = stream.sendQueue[0];
      if (!w) break;
      const n = Math.min(budget, w.chunk.length - w.offset);
      slices.push(
        w.offset === 0 && n === w.chunk.length ? w.chunk : w.chunk.subarray(w.offset, w.offset + n),
      );
      w.offset += n;
      size += n;
      budget -= n;
      if (w.offset === w.chunk.length) {
        stream.sendQueue.shift();
        if (w.callback) done.push(w.callback);
      }
    }
    if (size === 0) {
      // Empty writes: nothing to frame, their callbacks are due.
      for (const cb of done) cb();
      return done.length > 0;
    }
    // END_STREAM rides on the last DATA frame when the end is already queued.
    const last = stream.sendQueue.length === 0 && stream.endQueued;
    this.queue(frameHeader(size, FrameType.DATA, last ? Flag.END_STREAM : 0, stream.id));
    for (const s of slices) this.queue(s);
    stream.sendWindow -= size;
    this.sendWindow -= size;
    if (last) {
      stream.localEnded = true;
      this.ready.delete(stream);
      const cb = stream.endCallback;
      stream.endCallback = null;
      if (stream.remoteEnded) this.forgetStream(stream);
      if (cb) done.push(cb);
    }
    for (const cb of done) cb();
    return true;
  }

  private sendSettings(settings: Settings): void {
    this.queue(settingsFrame(settings));
    const timer = setTimeout(
      () => this.connectionError(ErrorCode.SETTINGS_TIMEOUT, 'SETTINGS not acknowledged'),
      this.handshakeMs,
    );
    timer.unref();
    this.settingsAckTimers.push(timer);
  }

  private sendGoaway(code: number, debug: string): void {
    this.goawaySent = true;
    this.goawayLastId = this.lastPeerId;
    this.queue(goawayFrame(this.lastPeerId, code, debug));
  }

  private queue(frame: Buffer): void {
    if (this.closed) return;
    this.out.push(frame);
    this.outBytes += frame.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(() => this.flush());
    }
  }

  /** Writes the turn's frames in one corked batch. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.out.length === 0 || this.socket.destroyed) return;
    const frames = this.out;
    this.out = [];
    this.outBytes = 0;
    let ok = true;
    if (frames.length === 1) ok = this.socket.write(frames[0]);
    else {
      this.socket.cork();
      for (const f of frames) ok = this.socket.write(f);
      this.socket.uncork();
    }
    if (!ok) {
      this.waitingDrain = true;
      // A peer that does not read while making us answer (PING/SETTINGS floods): bounded.
      if (this.socket.writableLength > this.limits.maxQueuedOutput) {
        this.connectionError(ErrorCode.ENHANCE_YOUR_CALM, 'peer does not read its answers');
        return;
      }
    }
    this.pump();
  }

  // ------------------------------------------------------------------------------ lifecycle

  /** Removes a stream from the table (closed by END_STREAM both ways or a reset). */
  private forgetStream(stream: FramerStream): void {
    if (stream.closedByProtocol) return;
    stream.closedByProtocol = true;
    this.streams.delete(stream.id);
    this.ready.delete(stream);
    // What the application has not read yet no longer holds the connection's window.
    const debt = stream.connectionDebt;
    stream.connectionDebt = 0;
    this.creditConnection(debt);
    if (this.streams.size === 0) {
      this.emit('idle');
      this.maybeFinish();
    }
  }

  private maybeFinish(): void {
    if ((this.goawaySent || this.goawayReceived) && this.streams.size === 0 && !this.closed) {
      this.flush();
      this.socket.end();
      this.teardown(undefined);
    }
  }

  private startKeepalive(intervalMs: number, timeoutMs: number): void {
    this.keepaliveTimer = setInterval(() => {
      if (this.closed || this.pingDeadline) return;
      this.pingDeadline = setTimeout(
        () =>
          this.destroy(
            framerError(
              'ERR_HBONE_KEEPALIVE',
              `HBONE keepalive timeout: no PING answer within ${timeoutMs}ms`,
            ),
          ),
        timeoutMs,
      );
      this.pingDeadline.unref();
      this.ping().then(
        () => {
          clearTimeout(this.pingDeadline);
          this.pingDeadline = undefined;
        },
        () => {},
      );
    }, intervalMs);
    this.keepaliveTimer.unref();
  }

  private teardown(err: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.closeError = err;
    clearTimeout(this.handshakeTimer);
    clearInterval(this.keepaliveTimer);
    clearTimeout(this.pingDeadline);
    for (const t of this.settingsAckTimers) clearTimeout(t);
    for (const w of this.pingWaiters.values())
      w.reject(framerError('ERR_H2_CLOSED', 'HTTP/2 connection closed'));
    this.pingWaiters.clear();
    const streamErr = err ?? framerError('ERR_H2_CLOSED', 'HTTP/2 connection closed');
    for (const stream of [...this.streams.values()]) {
      stream.closedByProtocol = true;
      stream.destroy(streamErr);
    }
    this.streams.clear();
    this.ready.clear();
    // Never inside the caller's close()/destroy(): listeners attached right after still hear it.
    process.nextTick(() => this.emit('close', this.closeError));
  }
}

/**
 * The content-length of a message: undefined without one, null when it is not a decimal length (or
 * repeated with different values, which arrive joined with ", ").
 */
function contentLength(headers: HeaderRecord): number | undefined | null {
  const field = headers['content-length'];
  if (field === undefined) return undefined;
  const values = new Set(field.split(',').map((v) => v.trim()));
  if (values.size !== 1) return null;
  const [value] = values;
  return value !== undefined && /^\d{1,15}$/.test(value) ? Number(value) : null;
}

function eofError(): Error {
  return framerError('ERR_H2_CONNECTION', 'HTTP/2 connection ended by the peer with streams open');
}

function elapsedMs(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}
