/**
 * The protobuf wire format (protobuf.dev/programming-guides/encoding): the records ambit's codecs
 * read and write (varint, 64-bit and length-delimited fields; 32-bit ones are only skipped).
 *
 * Hand-written, not imported, for the ztunnel's idle memory budget (50 MiB RSS): the wire entry point
 * of a general protobuf runtime pulls in its reflection and serialization layers, ~6.5 MiB of RSS in a
 * bare Node process (this file: ~0.5 MiB) and ~1 MiB in the ztunnel, where other modules already pay
 * most of that. ambit needs a dozen of its methods.
 *
 * Malformed input throws an Error saying what and where (truncated varint, a length past the end,
 * a varint over 10 bytes, wire types 6 and 7); nothing reads out of bounds. Groups (wire types 3 and 4,
 * proto2 only) are not supported: no message ambit reads has one, so they are rejected as well.
 */

export const WireType = {
  Varint: 0,
  Bit64: 1,
  LengthDelimited: 2,
  StartGroup: 3,
  EndGroup: 4,
  Bit32: 5,
} as const;
export type WireType = (typeof WireType)[keyof typeof WireType];

/** A varint is at most 10 bytes: 64 bits in 7-bit groups. */
const MAX_VARINT_BYTES = 10;
/** Field numbers are 1 .. 2^29 - 1 (the tag is a uint32 holding the number and 3 bits of wire type). */
const MAX_FIELD_NO = 0x1fffffff;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

// Protobuf strings are UTF-8 with a leading U+FEFF kept as a character, hence ignoreBOM.
const lenientUtf8 = new TextDecoder('utf-8', { ignoreBOM: true });
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** Bytes the varint encoding of the uint32 `n` takes. */
function varintSize(n: number): number {
  let size = 1;
  while (n > 0x7f) {
    n >>>= 7;
    size++;
  }
  return size;
}

export class BinaryReader {
  /** Offset of the next unread byte. */
  pos = 0;
  readonly len: number;
  private readonly buf: Uint8Array;
  private view: DataView | undefined;
  // The last varint read, as two unsigned 32-bit halves (numbers keep only 53 bits exactly).
  private lo = 0;
  private hi = 0;

  constructor(buf: Uint8Array) {
    this.buf = buf;
    this.len = buf.length;
  }

  /** Reads a varint into lo/hi. Bits past the 64th (in a 10th byte) are dropped, as the spec says. */
  private varint(): void {
    const start = this.pos;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.pos >= this.len) throw new Error(`truncated varint at offset ${start}`);
      const b = this.buf[this.pos++]!;
      const bits = b & 0x7f;
      if (i < 4) lo |= bits << (7 * i);
      else if (i === 4) {
        lo |= bits << 28; // the low 4 bits complete lo ...
        hi = bits >>> 4; // ... the high 3 start hi
      } else hi |= bits << (7 * i - 32);
      if ((b & 0x80) === 0) {
        this.lo = lo >>> 0;
        this.hi = hi >>> 0;
        return;
      }
    }
    throw new Error(`varint longer than ${MAX_VARINT_BYTES} bytes at offset ${start}`);
  }

  /** Moves past `n` bytes and returns where they start; throws if they are not all there. */
  private advance(n: number): number {
    const start = this.pos;
    if (n > this.len - start) throw new Error(`${n} bytes at offset ${start} run past the end (${this.len})`);
    this.pos += n;
    return start;
  }

  /** The length prefix of a length-delimited field. */
  private length(): number {
    const start = this.pos;
    this.varint();
    if (this.hi !== 0) throw new Error(`length at offset ${start} does not fit in 32 bits`);
    return this.lo;
  }

  /** The next field's tag as [field number, wire type]. */
  tag(): [number, WireType] {
    const start = this.pos;
    this.varint();
    if (this.hi !== 0 || this.pos - start > 5) throw new Error(`tag at offset ${start} overflows 32 bits`);
    const fieldNo = this.lo >>> 3;
    const wireType = this.lo & 7;
    if (fieldNo === 0) throw new Error(`field number 0 at offset ${start}`);
    if (wireType > WireType.Bit32) throw new Error(`invalid wire type ${wireType} at offset ${start}`);
    return [fieldNo, wireType as WireType];
  }

  /** Moves past the value of a field whose tag has just been read. */
  skip(wireType: WireType): void {
    switch (wireType) {
      case WireType.Varint:
        this.varint();
        return;
      case WireType.Bit64:
        this.advance(8);
        return;
      case WireType.LengthDelimited:
        this.advance(this.length());
        return;
      case WireType.Bit32:
        this.advance(4);
        return;
      default:
        throw new Error(`cannot skip wire type ${wireType} at offset ${this.pos} (groups are not supported)`);
    }
  }

  /** A uint32; a longer varint keeps its low 32 bits, as every protobuf parser does. */
  uint32(): number {
    this.varint();
    return this.lo;
  }

  /** An int32: negative values arrive as 10-byte (64-bit two's complement) varints. */
  int32(): number {
    this.varint();
    return this.lo | 0;
  }

  int64(): bigint {
    this.varint();
    return BigInt.asIntN(64, (BigInt(this.hi) << 32n) | BigInt(this.lo));
  }

  bool(): boolean {
    this.varint();
    return this.lo !== 0 || this.hi !== 0;
  }

  /** A double: 8 bytes, IEEE 754 little-endian. */
  double(): number {
    const at = this.advance(8);
    this.view ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    return this.view.getFloat64(at, true);
  }

  /** A length-delimited field's bytes: a view into the input, not a copy. */
  bytes(): Uint8Array {
    const n = this.length();
    const at = this.advance(n);
    return this.buf.subarray(at, at + n);
  }

  /** A string; invalid UTF-8 becomes U+FFFD, or throws when `strict` (proto3 requires valid UTF-8). */
  string(strict = false): string {
    const start = this.pos;
    const raw = this.bytes();
    if (!strict) return lenientUtf8.decode(raw);
    try {
      return strictUtf8.decode(raw);
    } catch {
      throw new Error(`invalid UTF-8 in the string at offset ${start}`);
    }
  }
}

export class BinaryWriter {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  private pos = 0;
  /** Where each open fork's length prefix starts. */
  private readonly forks: number[] = [];

  private ensure(extra: number): void {
    const need = this.pos + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const grown = new Uint8Array(size);
    // All of it, not just up to pos: join() and string() rewind pos over bytes already written.
    grown.set(this.buf);
    this.buf = grown;
    this.view = new DataView(grown.buffer);
  }

  /** A varint from two unsigned 32-bit halves, 7 bits at a time, low bits first. */
  private varint64(lo: number, hi: number): this {
    this.ensure(MAX_VARINT_BYTES);
    while (hi !== 0 || lo > 0x7f) {
      this.buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    this.buf[this.pos++] = lo;
    return this;
  }

  tag(fieldNo: number, wireType: WireType): this {
    if (!Number.isInteger(fieldNo) || fieldNo < 1 || fieldNo > MAX_FIELD_NO)
      throw new Error(`invalid field number: ${fieldNo}`);
    return this.uint32(((fieldNo << 3) | wireType) >>> 0);
  }

  uint32(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff)
      throw new Error(`invalid uint32: ${value}`);
    return this.varint64(value, 0);
  }

  /** A negative int32 is sign-extended to 64 bits, so it always takes 10 bytes. */
  int32(value: number): this {
    if (!Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff)
      throw new Error(`invalid int32: ${value}`);
    return this.varint64(value >>> 0, value < 0 ? 0xffffffff : 0);
  }

  int64(value: number | bigint): this {
    if (typeof value === 'number' && !Number.isInteger(value)) throw new Error(`invalid int64: ${value}`);
    const big = BigInt(value);
    if (big < INT64_MIN || big > INT64_MAX) throw new Error(`invalid int64: ${value}`);
    const bits = BigInt.asUintN(64, big);
    return this.varint64(Number(bits & 0xffffffffn), Number(bits >> 32n));
  }

  bool(value: boolean): this {
    this.ensure(1);
    this.buf[this.pos++] = value ? 1 : 0;
    return this;
  }

  /** A double: 8 bytes, IEEE 754 little-endian. */
  double(value: number): this {
    this.ensure(8);
    this.view.setFloat64(this.pos, value, true);
    this.pos += 8;
    return this;
  }

  bytes(value: Uint8Array): this {
    this.uint32(value.length);
    this.ensure(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
    return this;
  }

  /** A string as UTF-8 (a lone surrogate becomes U+FFFD), length first. */
  string(value: string): this {
    // Callers pass fields of untyped objects; anything else is written as its text, as TextEncoder would.
    if (typeof value !== 'string') value = String(value);
    // At most 3 bytes per UTF-16 unit: encode after room for the longest prefix, then close the gap
    // if the real length needs a shorter one.
    const maxLen = value.length * 3;
    const room = varintSize(maxLen);
    this.ensure(room + maxLen);
    const at = this.pos;
    const { written } = utf8Encoder.encodeInto(value, this.buf.subarray(at + room));
    const prefix = varintSize(written);
    if (prefix < room) this.buf.copyWithin(at + prefix, at + room, at + room + written);
    this.uint32(written);
    this.pos = at + prefix + written;
    return this;
  }

  /** Starts a length-delimited field (a message or packed list); `join()` writes its length. */
  fork(): this {
    this.forks.push(this.pos);
    // Reserve one byte for the length, enough for the common payload under 128 bytes.
    this.ensure(1);
    this.pos++;
    return this;
  }

  join(): this {
    const at = this.forks.pop();
    if (at === undefined) throw new Error('join() without a matching fork()');
    const len = this.pos - at - 1;
    const prefix = varintSize(len);
    if (prefix > 1) {
      this.ensure(prefix - 1);
      this.buf.copyWithin(at + prefix, at + 1, this.pos);
    }
    this.pos = at;
    this.uint32(len);
    this.pos = at + prefix + len;
    return this;
  }

  /** Everything written, as a new array; the writer starts over empty. */
  finish(): Uint8Array {
    if (this.forks.length > 0) throw new Error(`finish() with ${this.forks.length} fork(s) not joined`);
    const out = this.buf.slice(0, this.pos);
    this.pos = 0;
    return out;
  }
}
