/**
 * HTTP/2 frame layout (RFC 9113 §4, §6): a reader that cuts a byte stream into frames and writers for
 * each frame type HBONE sends. DATA payload is handed on in the slices it arrived in (no copy, no wait for
 * the whole frame); every other frame is delivered whole.
 */
import { ErrorCode, Flag, FRAME_HEADER_LENGTH, FrameType, SettingId, type Settings } from './protocol.js';

/** A connection error (RFC 9113 §5.4.1): the connection is closed with GOAWAY carrying `code`. */
export class ConnectionError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export interface FrameHandler {
  /** A DATA frame begins; `length` is the whole frame with padding (what flow control counts). */
  dataBegin(streamId: number, flags: number, length: number): void;
  /** Payload bytes of the current DATA frame (padding removed). */
  dataChunk(streamId: number, chunk: Buffer): void;
  dataEnd(streamId: number, flags: number): void;
  /** Any other frame, payload complete. */
  frame(type: number, flags: number, streamId: number, payload: Buffer): void;
}

enum State {
  Header,
  DataPayload, // streamed
  Payload, // collected whole
}

export class FrameReader {
  /** Largest payload accepted: this side's SETTINGS_MAX_FRAME_SIZE. */
  maxFrameSize: number;
  private readonly header = Buffer.alloc(FRAME_HEADER_LENGTH);
  private headerFill = 0;
  private state = State.Header;
  private type = 0;
  private flags = 0;
  private streamId = 0;
  private remaining = 0;
  private parts: Buffer[] = [];

  constructor(
    private readonly handler: FrameHandler,
    maxFrameSize: number,
  ) {
    this.maxFrameSize = maxFrameSize;
  }

  /** Feeds bytes read from the socket; throws ConnectionError on a framing violation. */
  push(chunk: Buffer): void {
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      if (this.state === State.Header) {
        // Fast path: the whole header is in this chunk.
        let h: Buffer;
        let at: number;
        if (this.headerFill === 0 && end - pos >= FRAME_HEADER_LENGTH) {
          h = chunk;
          at = pos;
          pos += FRAME_HEADER_LENGTH;
        } else {
          const take = Math.min(FRAME_HEADER_LENGTH - this.headerFill, end - pos);
          chunk.copy(this.header, this.headerFill, pos, pos + take);
          this.headerFill += take;
          pos += take;
          if (this.headerFill < FRAME_HEADER_LENGTH) return;
          this.headerFill = 0;
          h = this.header;
          at = 0;
        }
        const length = (h[at]! << 16) | (h[at + 1]! << 8) | h[at + 2]!;
        this.type = h[at + 3]!;
        this.flags = h[at + 4]!;
        this.streamId = h.readUInt32BE(at + 5) & 0x7fffffff;
        if (length > this.maxFrameSize)
          throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, `frame of ${length} octets`);
        this.remaining = length;
        if (this.type === FrameType.DATA) {
          this.handler.dataBegin(this.streamId, this.flags, length);
          this.state = this.flags & Flag.PADDED ? State.Payload : State.DataPayload;
        } else this.state = State.Payload;
        if (length === 0) this.finish(Buffer.alloc(0));
        continue;
      }
      const take = Math.min(this.remaining, end - pos);
      const slice = chunk.subarray(pos, pos + take);
      pos += take;
      this.remaining -= take;
      if (this.state === State.DataPayload) {
        this.handler.dataChunk(this.streamId, slice);
        if (this.remaining === 0) {
          this.state = State.Header;
          this.handler.dataEnd(this.streamId, this.flags);
        }
      } else {
        this.parts.push(slice);
        if (this.remaining === 0) {
          const payload = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
          this.parts = [];
          this.finish(payload);
        }
      }
    }
  }

  private finish(payload: Buffer): void {
    const { type, flags, streamId } = this;
    const streamed = this.state === State.DataPayload;
    this.state = State.Header;
    if (type !== FrameType.DATA) {
      this.handler.frame(type, flags, streamId, payload);
      return;
    }
    if (!streamed) {
      const data = unpad(payload, flags);
      if (data.length > 0) this.handler.dataChunk(streamId, data);
    }
    this.handler.dataEnd(streamId, flags);
  }
}

/** Strips padding from a DATA or HEADERS payload (RFC 9113 §6.1). */
export function unpad(payload: Buffer, flags: number): Buffer {
  if (!(flags & Flag.PADDED)) return payload;
  if (payload.length < 1)
    throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'padded frame without pad length');
  const padLength = payload[0]!;
  if (padLength >= payload.length)
    throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'padding longer than the payload');
  return payload.subarray(1, payload.length - padLength);
}

export function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_LENGTH);
  writeFrameHeader(b, 0, length, type, flags, streamId);
  return b;
}

function writeFrameHeader(
  b: Buffer,
  at: number,
  length: number,
  type: number,
  flags: number,
  streamId: number,
) {
  b[at] = (length >>> 16) & 0xff;
  b[at + 1] = (length >>> 8) & 0xff;
  b[at + 2] = length & 0xff;
  b[at + 3] = type;
  b[at + 4] = flags;
  b.writeUInt32BE(streamId & 0x7fffffff, at + 5);
}

function frame(type: number, flags: number, streamId: number, payloadLength: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + payloadLength);
  writeFrameHeader(b, 0, payloadLength, type, flags, streamId);
  return b;
}

const SETTING_KEYS: ReadonlyArray<readonly [keyof Settings, number]> = [
  ['headerTableSize', SettingId.HEADER_TABLE_SIZE],
  ['enablePush', SettingId.ENABLE_PUSH],
  ['maxConcurrentStreams', SettingId.MAX_CONCURRENT_STREAMS],
  ['initialWindowSize', SettingId.INITIAL_WINDOW_SIZE],
  ['maxFrameSize', SettingId.MAX_FRAME_SIZE],
  ['maxHeaderListSize', SettingId.MAX_HEADER_LIST_SIZE],
];

/** A SETTINGS frame with the given values (infinite ones are left out: the protocol default). */
export function settingsFrame(settings: Partial<Settings>): Buffer {
  const entries: Array<[number, number]> = [];
  for (const [key, id] of SETTING_KEYS) {
    const v = settings[key];
    if (v === undefined) continue;
    const n = typeof v === 'boolean' ? Number(v) : v;
    if (Number.isFinite(n)) entries.push([id, n]);
  }
  const b = frame(FrameType.SETTINGS, 0, 0, entries.length * 6);
  entries.forEach(([id, value], i) => {
    b.writeUInt16BE(id, FRAME_HEADER_LENGTH + i * 6);
    b.writeUInt32BE(value, FRAME_HEADER_LENGTH + i * 6 + 2);
  });
  return b;
}

export const SETTINGS_ACK = frameHeader(0, FrameType.SETTINGS, Flag.ACK, 0);

export function pingFrame(payload: Buffer, ack: boolean): Buffer {
  const b = frame(FrameType.PING, ack ? Flag.ACK : 0, 0, 8);
  payload.copy(b, FRAME_HEADER_LENGTH, 0, 8);
  return b;
}

export function goawayFrame(lastStreamId: number, code: number, debug = ''): Buffer {
  const text = Buffer.from(debug, 'utf8');
  const b = frame(FrameType.GOAWAY, 0, 0, 8 + text.length);
  b.writeUInt32BE(lastStreamId & 0x7fffffff, FRAME_HEADER_LENGTH);
  b.writeUInt32BE(code, FRAME_HEADER_LENGTH + 4);
  text.copy(b, FRAME_HEADER_LENGTH + 8);
  return b;
}

export function rstStreamFrame(streamId: number, code: number): Buffer {
  const b = frame(FrameType.RST_STREAM, 0, streamId, 4);
  b.writeUInt32BE(code, FRAME_HEADER_LENGTH);
  return b;
}

export function windowUpdateFrame(streamId: number, increment: number): Buffer {
  const b = frame(FrameType.WINDOW_UPDATE, 0, streamId, 4);
  b.writeUInt32BE(increment & 0x7fffffff, FRAME_HEADER_LENGTH);
  return b;
}

/** HEADERS, followed by CONTINUATION frames when the block exceeds the peer's frame size. */
export function headersFrames(
  streamId: number,
  block: Buffer,
  endStream: boolean,
  maxFrameSize: number,
): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  let first = true;
  do {
    const size = Math.min(maxFrameSize, block.length - pos);
    const last = pos + size >= block.length;
    let flags = last ? Flag.END_HEADERS : 0;
    if (first && endStream) flags |= Flag.END_STREAM;
    const b = frame(first ? FrameType.HEADERS : FrameType.CONTINUATION, flags, streamId, size);
    block.copy(b, FRAME_HEADER_LENGTH, pos, pos + size);
    out.push(b);
    pos += size;
    first = false;
  } while (pos < block.length);
  return out;
}

/** Parses a SETTINGS payload into (id, value) pairs; validation of values is the caller's. */
export function parseSettings(payload: Buffer): Array<[number, number]> {
  if (payload.length % 6 !== 0)
    throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS length not a multiple of 6');
  const out: Array<[number, number]> = [];
  for (let i = 0; i < payload.length; i += 6)
    out.push([payload.readUInt16BE(i), payload.readUInt32BE(i + 2)]);
  return out;
}
