import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ConnectionError,
  type FrameHandler,
  FrameReader,
  frameHeader,
  goawayFrame,
  headersFrames,
  parseSettings,
  settingsFrame,
  windowUpdateFrame,
} from '../../../src/hbone/frame/codec.js';
import { ErrorCode, Flag, FrameType } from '../../../src/hbone/frame/protocol.js';

function collector() {
  const events: string[] = [];
  const data: Buffer[] = [];
  const handler: FrameHandler = {
    dataBegin: (id, flags, length) => events.push(`data-begin ${id} ${flags} ${length}`),
    dataChunk: (_id, chunk) => data.push(Buffer.from(chunk)),
    dataEnd: (id, flags) => events.push(`data-end ${id} ${flags}`),
    frame: (type, flags, id, payload) =>
      events.push(`frame ${type} ${flags} ${id} ${payload.toString('hex')}`),
  };
  return { events, data, handler };
}

test('frames split at every byte boundary come out whole; DATA payload streams without copies', () => {
  const payload = Buffer.from('hello world');
  const wire = Buffer.concat([
    settingsFrame({ initialWindowSize: 4 * 1024 * 1024, maxFrameSize: 1 << 20 }),
    frameHeader(payload.length, FrameType.DATA, Flag.END_STREAM, 1),
    payload,
    windowUpdateFrame(0, 1000),
    goawayFrame(7, ErrorCode.NO_ERROR),
  ]);
  for (const step of [1, 2, 5, 9, 13, wire.length]) {
    const c = collector();
    const reader = new FrameReader(c.handler, 16_384);
    for (let i = 0; i < wire.length; i += step) reader.push(wire.subarray(i, i + step));
    assert.deepEqual(c.events, [
      'frame 4 0 0 000400400000000500100000',
      `data-begin 1 1 ${payload.length}`,
      'data-end 1 1',
      'frame 8 0 0 000003e8',
      'frame 7 0 0 0000000700000000',
    ]);
    assert.equal(Buffer.concat(c.data).toString(), 'hello world');
  }
});

test('padded DATA is delivered without its padding; padding beyond the payload is PROTOCOL_ERROR', () => {
  const c = collector();
  const reader = new FrameReader(c.handler, 16_384);
  const padded = Buffer.concat([Buffer.from([3]), Buffer.from('abc'), Buffer.alloc(3)]);
  reader.push(Buffer.concat([frameHeader(padded.length, FrameType.DATA, Flag.PADDED, 1), padded]));
  assert.equal(Buffer.concat(c.data).toString(), 'abc');
  assert.deepEqual(c.events, ['data-begin 1 8 7', 'data-end 1 8']);
  const bad = Buffer.from([9, 1, 2]);
  assert.throws(
    () =>
      new FrameReader(collector().handler, 16_384).push(
        Buffer.concat([frameHeader(3, 0, Flag.PADDED, 1), bad]),
      ),
    (e: unknown) => e instanceof ConnectionError && e.code === ErrorCode.PROTOCOL_ERROR,
  );
});

test('a frame above SETTINGS_MAX_FRAME_SIZE is FRAME_SIZE_ERROR', () => {
  assert.throws(
    () => new FrameReader(collector().handler, 16_384).push(frameHeader(16_385, FrameType.DATA, 0, 1)),
    (e: unknown) => e instanceof ConnectionError && e.code === ErrorCode.FRAME_SIZE_ERROR,
  );
});

test('a header block larger than the peer frame size is split into HEADERS + CONTINUATION', () => {
  const block = Buffer.alloc(40_000, 0x82);
  const frames = headersFrames(1, block, true, 16_384);
  assert.equal(frames.length, 3);
  assert.equal(frames[0]![3], FrameType.HEADERS);
  assert.equal(frames[0]![4], Flag.END_STREAM);
  assert.equal(frames[1]![3], FrameType.CONTINUATION);
  assert.equal(frames[2]![4], Flag.END_HEADERS);
  assert.equal(
    frames.reduce((n, f) => n + f.length - 9, 0),
    40_000,
  );
});

test('SETTINGS payloads must be a multiple of 6', () => {
  assert.deepEqual(parseSettings(Buffer.from('000400010000', 'hex')), [[4, 65536]]);
  assert.throws(() => parseSettings(Buffer.alloc(5)), ConnectionError);
});
