import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BinaryReader, BinaryWriter, WireType } from '../../src/protobuf/wire.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Writes one field with `write`, checks the tag on reading back and returns [bytes, value read]. */
function roundTrip<T>(
  wt: WireType,
  write: (w: BinaryWriter) => void,
  read: (r: BinaryReader) => T,
): [Uint8Array, T] {
  const w = new BinaryWriter();
  w.tag(1, wt);
  write(w);
  const bytes = w.finish();
  const r = new BinaryReader(bytes);
  assert.deepEqual(r.tag(), [1, wt]);
  const value = read(r);
  assert.equal(r.pos, r.len, 'the whole field is read');
  return [bytes, value];
}

/** Round-trips each [value, expected hex of the varint] as field 1. */
function checkVarints<T>(
  cases: Array<[T, string]>,
  write: (w: BinaryWriter, v: T) => void,
  read: (r: BinaryReader) => T,
): void {
  for (const [v, enc] of cases) {
    const [bytes, got] = roundTrip(WireType.Varint, (w) => write(w, v), read);
    assert.equal(got, v);
    assert.equal(toHex(bytes.subarray(1)), enc, String(v));
  }
}

describe('protobuf wire: byte-exact encodings (protobuf.dev encoding guide)', () => {
  it('field 1 varint 150 is 08 96 01', () => {
    assert.equal(toHex(new BinaryWriter().tag(1, WireType.Varint).uint32(150).finish()), '089601');
    const r = new BinaryReader(hex('08 96 01'));
    assert.deepEqual(r.tag(), [1, WireType.Varint]);
    assert.equal(r.uint32(), 150);
  });

  it('field 2 string "testing" is 12 07 74 65 73 74 69 6e 67', () => {
    const bytes = new BinaryWriter().tag(2, WireType.LengthDelimited).string('testing').finish();
    assert.equal(toHex(bytes), '120774657374696e67');
  });

  it('a message holding field 3 = {field 1 = 150} is 1a 03 08 96 01', () => {
    const w = new BinaryWriter();
    w.tag(3, WireType.LengthDelimited).fork();
    w.tag(1, WireType.Varint).uint32(150);
    w.join();
    assert.equal(toHex(w.finish()), '1a03089601');
  });

  it('int32 -2 is the 10-byte varint fe ff ff ff ff ff ff ff ff 01', () => {
    assert.equal(toHex(new BinaryWriter().int32(-2).finish()), 'feffffffffffffffff01');
  });

  it('double 1.0 is 8 bytes little-endian, bools are 00 and 01', () => {
    assert.equal(toHex(new BinaryWriter().double(1).finish()), '000000000000f03f');
    assert.equal(toHex(new BinaryWriter().bool(false).bool(true).finish()), '0001');
  });

  it('a tag with the largest field number 2^29-1 is a 5-byte varint', () => {
    const bytes = new BinaryWriter().tag(0x1fffffff, WireType.Bit32).finish();
    assert.equal(toHex(bytes), 'fdffffff0f');
    assert.deepEqual(new BinaryReader(bytes).tag(), [0x1fffffff, WireType.Bit32]);
  });
});

describe('protobuf wire: round trips', () => {
  it('uint32 edge values', () => {
    const cases: Array<[number, string]> = [
      [0, '00'],
      [1, '01'],
      [127, '7f'],
      [128, '8001'],
      [2 ** 31 - 1, 'ffffffff07'],
      [2 ** 32 - 1, 'ffffffff0f'],
    ];
    checkVarints(
      cases,
      (w, v) => w.uint32(v),
      (r) => r.uint32(),
    );
  });

  it('int32 edge values; negatives take 10 bytes', () => {
    for (const v of [0, 1, 2 ** 31 - 1, -1, -(2 ** 31)]) {
      const [bytes, got] = roundTrip(
        WireType.Varint,
        (w) => w.int32(v),
        (r) => r.int32(),
      );
      assert.equal(got, v);
      if (v < 0) assert.equal(bytes.length - 1, 10, `${v} takes 10 bytes`);
    }
    assert.equal(toHex(new BinaryWriter().int32(-1).finish()), 'ffffffffffffffffff01');
  });

  it('int64 extremes, as bigint or number', () => {
    const cases: Array<[bigint, string]> = [
      [0n, '00'],
      [1n, '01'],
      [-1n, 'ffffffffffffffffff01'],
      [(1n << 63n) - 1n, 'ffffffffffffffff7f'],
      [-(1n << 63n), '80808080808080808001'],
      [2n ** 53n, '8080808080808010'],
    ];
    checkVarints(
      cases,
      (w, v) => w.int64(v),
      (r) => r.int64(),
    );
    assert.equal(new BinaryReader(new BinaryWriter().int64(86400).finish()).int64(), 86400n);
    assert.equal(new BinaryReader(new BinaryWriter().int64(-5).finish()).int64(), -5n);
  });

  it('bool, including a long varint read as true', () => {
    for (const v of [true, false]) {
      const [, got] = roundTrip(
        WireType.Varint,
        (w) => w.bool(v),
        (r) => r.bool(),
      );
      assert.equal(got, v);
    }
    assert.equal(new BinaryReader(hex('80 80 80 80 80 80 80 80 80 01')).bool(), true);
  });

  it('double: NaN, -0, infinities, extremes', () => {
    for (const v of [0, -0, NaN, Infinity, -Infinity, 1.5, Number.MAX_VALUE, Number.MIN_VALUE, -1e-300]) {
      const [bytes, got] = roundTrip(
        WireType.Bit64,
        (w) => w.double(v),
        (r) => r.double(),
      );
      assert.ok(Object.is(got, v), String(v));
      assert.equal(bytes.length, 9);
    }
  });

  it('strings: empty, ASCII, non-ASCII, astral, a leading BOM and long ones', () => {
    const long = 'é'.repeat(100); // 200 bytes: a 2-byte length, written after reserving for 300
    for (const v of [
      '',
      'a',
      'testing',
      'héllo wörld',
      '中文',
      '😀 emoji',
      '\ufeffbom',
      long,
      'x'.repeat(1000),
    ]) {
      const [bytes, got] = roundTrip(
        WireType.LengthDelimited,
        (w) => w.string(v),
        (r) => r.string(true),
      );
      assert.equal(got, v);
      assert.equal(
        toHex(bytes.subarray(bytes.length - Buffer.byteLength(v))),
        Buffer.from(v).toString('hex'),
      );
    }
  });

  it('strings: a lone surrogate is written as U+FFFD, lenient reading replaces bad UTF-8', () => {
    assert.equal(toHex(new BinaryWriter().string('\ud800').finish()), '03efbfbd');
    assert.equal(new BinaryReader(hex('02 61 ff')).string(), 'a\ufffd');
  });

  it('bytes: empty and binary, read as a view of the input', () => {
    for (const v of [new Uint8Array(0), hex('00 ff 80 01'), new Uint8Array(300).fill(7)]) {
      const [bytes, got] = roundTrip(
        WireType.LengthDelimited,
        (w) => w.bytes(v),
        (r) => r.bytes(),
      );
      assert.deepEqual(got, v);
      assert.equal(got.buffer, bytes.buffer);
    }
  });

  it('nested fork/join two deep, with a payload over 127 bytes widening the length', () => {
    const w = new BinaryWriter();
    w.tag(1, WireType.LengthDelimited).fork();
    w.tag(2, WireType.Varint).uint32(7);
    w.tag(3, WireType.LengthDelimited).fork();
    w.tag(4, WireType.LengthDelimited).string('y'.repeat(200));
    w.join();
    w.tag(5, WireType.Varint).bool(true);
    w.join();
    w.tag(6, WireType.LengthDelimited).fork().join(); // an empty message is 32 00
    const bytes = w.finish();
    assert.equal(toHex(bytes.subarray(bytes.length - 2)), '3200');

    const outer = new BinaryReader(bytes);
    assert.deepEqual(outer.tag(), [1, WireType.LengthDelimited]);
    const m1 = new BinaryReader(outer.bytes());
    assert.deepEqual(m1.tag(), [2, WireType.Varint]);
    assert.equal(m1.uint32(), 7);
    assert.deepEqual(m1.tag(), [3, WireType.LengthDelimited]);
    const m2 = new BinaryReader(m1.bytes());
    assert.deepEqual(m2.tag(), [4, WireType.LengthDelimited]);
    assert.equal(m2.string(), 'y'.repeat(200));
    assert.equal(m2.pos, m2.len);
    assert.deepEqual(m1.tag(), [5, WireType.Varint]);
    assert.equal(m1.bool(), true);
    assert.equal(m1.pos, m1.len);
    assert.deepEqual(outer.tag(), [6, WireType.LengthDelimited]);
    assert.equal(outer.bytes().length, 0);
    assert.equal(outer.pos, outer.len);
  });

  it('the writer grows past its first buffer and starts over after finish()', () => {
    const w = new BinaryWriter();
    for (let i = 0; i < 5000; i++) w.tag(1, WireType.Varint).uint32(i);
    const big = w.finish();
    const r = new BinaryReader(big);
    for (let i = 0; i < 5000; i++) {
      r.tag();
      assert.equal(r.uint32(), i);
    }
    assert.equal(toHex(w.tag(1, WireType.Varint).uint32(1).finish()), '0801');
  });

  it('skips every supported wire type', () => {
    // field 1 varint (10 bytes), 2 fixed64, 3 length-delimited, 4 fixed32, then field 5 = 1
    const bytes = hex('08 ffffffffffffffffff01 11 0102030405060708 1a 02 6162 25 01020304 28 01');
    const r = new BinaryReader(bytes);
    for (let i = 0; i < 4; i++) {
      const [, wt] = r.tag();
      r.skip(wt);
    }
    assert.deepEqual(r.tag(), [5, WireType.Varint]);
    assert.equal(r.uint32(), 1);
  });

  it('reads int32/uint32 of a longer varint as its low 32 bits', () => {
    assert.equal(new BinaryReader(hex('80 80 80 80 10')).uint32(), 0); // 2^32
    assert.equal(new BinaryReader(hex('ff ff ff ff ff ff ff ff ff 01')).uint32(), 0xffffffff);
    assert.equal(new BinaryReader(hex('ff ff ff ff 0f')).int32(), -1);
  });
});

describe('protobuf wire: malformed input throws a clear Error', () => {
  const throwsOn = (bytes: string, read: (r: BinaryReader) => unknown, message: RegExp) =>
    assert.throws(() => read(new BinaryReader(hex(bytes))), message, bytes);

  it('truncated varints, in values, tags and lengths', () => {
    throwsOn('', (r) => r.uint32(), /truncated varint at offset 0/);
    throwsOn('96', (r) => r.uint32(), /truncated varint/);
    throwsOn('ff ff ff', (r) => r.int64(), /truncated varint/);
    throwsOn('88', (r) => r.tag(), /truncated varint/);
    throwsOn('80', (r) => r.bytes(), /truncated varint/);
    throwsOn('80', (r) => r.bool(), /truncated varint/);
    throwsOn('08 80', (r) => r.skip(r.tag()[1]), /truncated varint at offset 1/);
  });

  it('varints longer than 10 bytes', () => {
    throwsOn('ff ff ff ff ff ff ff ff ff ff 01', (r) => r.int64(), /varint longer than 10 bytes/);
    throwsOn('80 80 80 80 80 80 80 80 80 80 80 80 00', (r) => r.uint32(), /longer than 10/);
  });

  it('lengths past the end, for bytes, strings and skipped fields', () => {
    throwsOn('05 61 62', (r) => r.bytes(), /5 bytes at offset 1 run past the end \(3\)/);
    throwsOn('05 61 62', (r) => r.string(), /run past the end/);
    throwsOn('12 05 61', (r) => r.skip(r.tag()[1]), /run past the end/);
    throwsOn('ff ff ff ff 0f', (r) => r.bytes(), /run past the end/);
    throwsOn('80 80 80 80 80 01', (r) => r.bytes(), /length at offset 0 does not fit in 32 bits/);
  });

  it('fixed-width values past the end', () => {
    throwsOn('00 00 00 00 00 00 f0', (r) => r.double(), /8 bytes at offset 0 run past the end/);
    throwsOn('09 00 00', (r) => r.skip(r.tag()[1]), /run past the end/);
    throwsOn('0d 00 00 00', (r) => r.skip(r.tag()[1]), /4 bytes at offset 1 run past the end/);
  });

  it('invalid tags: wire types 6 and 7, field number 0, over 32 bits', () => {
    throwsOn('0e', (r) => r.tag(), /invalid wire type 6 at offset 0/);
    throwsOn('0f', (r) => r.tag(), /invalid wire type 7/);
    throwsOn('00', (r) => r.tag(), /field number 0/);
    throwsOn('02 00', (r) => r.tag(), /field number 0/);
    throwsOn('80 80 80 80 10', (r) => r.tag(), /overflows 32 bits/);
    throwsOn('88 80 80 80 80 00', (r) => r.tag(), /overflows 32 bits/);
  });

  it('groups (wire types 3 and 4) cannot be skipped', () => {
    throwsOn('0b 08 01 0c', (r) => r.skip(r.tag()[1]), /cannot skip wire type 3 .*groups are not supported/);
    throwsOn('0c', (r) => r.skip(r.tag()[1]), /cannot skip wire type 4/);
  });

  it('invalid UTF-8 in a strict string', () => {
    throwsOn('02 61 ff', (r) => r.string(true), /invalid UTF-8 in the string at offset 0/);
    throwsOn('01 c3', (r) => r.string(true), /invalid UTF-8/);
  });

  it('never loops on adversarial input: every prefix and byte flip of a message throws or ends', () => {
    const w = new BinaryWriter();
    w.tag(1, WireType.LengthDelimited).fork();
    w.tag(2, WireType.Varint).int32(-7);
    w.tag(3, WireType.Bit64).double(2.5);
    w.tag(4, WireType.LengthDelimited).string('héllo');
    w.join();
    const good = w.finish();
    const walk = (bytes: Uint8Array, depth: number): void => {
      const r = new BinaryReader(bytes);
      while (r.pos < r.len) {
        const [, wt] = r.tag();
        if (wt === WireType.LengthDelimited && depth < 3) walk(r.bytes(), depth + 1);
        else r.skip(wt);
        assert.ok(r.pos <= r.len);
      }
    };
    for (let n = 0; n <= good.length; n++)
      for (let i = 0; i < Math.max(n, 1); i++)
        for (const flip of [0x00, 0x80, 0xff, 0x07, 0x04]) {
          const bytes = Uint8Array.from(good.subarray(0, n));
          if (n > 0) bytes[i] = (bytes[i] ?? 0) ^ flip;
          try {
            walk(bytes, 0);
          } catch (err) {
            assert.ok(err instanceof Error && err.message.length > 0);
          }
        }
  });
});

describe('protobuf wire: writer misuse throws', () => {
  it('out-of-range and non-integer numbers', () => {
    const w = new BinaryWriter();
    assert.throws(() => w.uint32(-1), /invalid uint32: -1/);
    assert.throws(() => w.uint32(2 ** 32), /invalid uint32/);
    assert.throws(() => w.uint32(1.5), /invalid uint32/);
    assert.throws(() => w.int32(2 ** 31), /invalid int32/);
    assert.throws(() => w.int32(-(2 ** 31) - 1), /invalid int32/);
    assert.throws(() => w.int32(Number.NaN), /invalid int32/);
    assert.throws(() => w.int64(1.5), /invalid int64/);
    assert.throws(() => w.int64(1n << 63n), /invalid int64/);
    assert.throws(() => w.int64(-(1n << 63n) - 1n), /invalid int64/);
  });

  it('invalid field numbers and unbalanced fork/join', () => {
    assert.throws(() => new BinaryWriter().tag(0, WireType.Varint), /invalid field number: 0/);
    assert.throws(() => new BinaryWriter().tag(2 ** 29, WireType.Varint), /invalid field number/);
    assert.throws(() => new BinaryWriter().join(), /join\(\) without a matching fork\(\)/);
    assert.throws(() => new BinaryWriter().fork().finish(), /1 fork\(s\) not joined/);
  });
});
