/**
 * The framer server under abuse (RFC 9113 and the known HTTP/2 floods): every case ends in the error the
 * RFC names, or in ENHANCE_YOUR_CALM for floods, and never in unbounded work or memory.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rstStreamFrame } from '../../../src/hbone/frame/codec.js';
import type { FramerOptions } from '../../../src/hbone/frame/connection.js';
import { ErrorCode, Flag, FrameType } from '../../../src/hbone/frame/protocol.js';
import { closeAfterTests, framerServer } from './helpers.js';
import { CONNECT_LIST, RawPeer } from './raw-peer.js';

/** Answers each CONNECT a turn later, as ztunnel does once its upstream dial is under way. */
async function server(options: FramerOptions = {}) {
  const s = await framerServer((stream) => {
    stream.on('error', () => {});
    setImmediate(() => stream.respond(200));
  }, options);
  closeAfterTests(() => s.server.close());
  return s;
}

async function peer(port: number, options?: { settings?: boolean; ack?: boolean }) {
  const p = await RawPeer.connect(port, options);
  closeAfterTests(() => p.destroy());
  return p;
}

test('rapid reset: opening and resetting streams beyond the burst gets GOAWAY ENHANCE_YOUR_CALM', async () => {
  const { port } = await server();
  const p = await peer(port);
  const frames: Buffer[] = [];
  for (let i = 0; i < 400; i++) {
    const id = 1 + 2 * i;
    frames.push(p.headers(id, CONNECT_LIST), rstStreamFrame(id, ErrorCode.CANCEL));
  }
  p.write(...frames);
  assert.equal(await p.goawayCode(), ErrorCode.ENHANCE_YOUR_CALM);
  await p.closed();
});

test('a client resetting streams that were answered (its apps breaking off) is not rapid reset', async () => {
  const { port } = await server({ settings: { maxConcurrentStreams: 1000 } });
  const p = await peer(port);
  const streams = 400;
  p.write(...Array.from({ length: streams }, (_, i) => p.headers(1 + 2 * i, CONNECT_LIST)));
  // Every stream answered 200 before any is reset.
  const answered = () => p.frames.filter((f) => f.type === FrameType.HEADERS).length;
  await p.waitFor(() => answered() >= streams);
  p.write(...Array.from({ length: streams }, (_, i) => rstStreamFrame(1 + 2 * i, ErrorCode.CANCEL)));
  // A PING answered after the resets: they were all processed, and no GOAWAY came.
  p.write(p.frame(FrameType.PING, 0, 0, Buffer.from('afterrst')));
  await p.waitFor((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0);
  assert.equal(p.frames.filter((f) => f.type === FrameType.GOAWAY).length, 0);
});

test('PING flood and SETTINGS flood get GOAWAY ENHANCE_YOUR_CALM', async () => {
  const { port } = await server();
  const a = await peer(port);
  a.write(...Array.from({ length: 300 }, () => a.frame(FrameType.PING, 0, 0, Buffer.alloc(8))));
  assert.equal(await a.goawayCode(), ErrorCode.ENHANCE_YOUR_CALM);
  const b = await peer(port);
  b.write(...Array.from({ length: 300 }, () => b.frame(FrameType.SETTINGS, 0, 0)));
  assert.equal(await b.goawayCode(), ErrorCode.ENHANCE_YOUR_CALM);
});

test('a PING is answered with the same payload and ACK', async () => {
  const { port } = await server();
  const p = await peer(port);
  p.write(p.frame(FrameType.PING, 0, 0, Buffer.from('12345678')));
  const ack = await p.waitFor((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0);
  assert.equal(ack.payload.toString(), '12345678');
});

test('CONTINUATION flood: endless CONTINUATION frames get GOAWAY ENHANCE_YOUR_CALM', async () => {
  const { port } = await server();
  const p = await peer(port);
  const frames = [p.headers(1, CONNECT_LIST, 0)];
  for (let i = 0; i < 100; i++)
    frames.push(p.frame(FrameType.CONTINUATION, 0, 1, Buffer.from([0x40, 1, 0x61, 1, 0x62])));
  p.write(...frames);
  assert.equal(await p.goawayCode(), ErrorCode.ENHANCE_YOUR_CALM);
});

test('an oversized header list is answered 431, and the connection goes on', async () => {
  const { port } = await server();
  const p = await peer(port);
  p.write(p.headers(1, [...CONNECT_LIST, ['x-big', 'x'.repeat(70 * 1024)]]));
  const h = await p.waitFor((f) => f.type === FrameType.HEADERS && f.streamId === 1);
  assert.equal(h.payload.toString('hex'), '0803343331'); // literal :status (index 8) "431"
  assert.ok(h.flags & Flag.END_STREAM);
  p.write(p.headers(3, CONNECT_LIST));
  const ok = await p.waitFor((f) => f.type === FrameType.HEADERS && f.streamId === 3);
  assert.equal(ok.payload.toString('hex'), '88'); // :status 200
});

test('beyond MAX_CONCURRENT_STREAMS a stream is refused with REFUSED_STREAM', async () => {
  const { port } = await server({ settings: { maxConcurrentStreams: 2 } });
  const p = await peer(port);
  p.write(p.headers(1, CONNECT_LIST), p.headers(3, CONNECT_LIST), p.headers(5, CONNECT_LIST));
  const rst = await p.waitFor((f) => f.type === FrameType.RST_STREAM);
  assert.equal(rst.streamId, 5);
  assert.equal(rst.payload.readUInt32BE(0), ErrorCode.REFUSED_STREAM);
});

test('DATA, WINDOW_UPDATE or RST_STREAM on a stream never opened: GOAWAY PROTOCOL_ERROR', async () => {
  const { port } = await server();
  const win = Buffer.alloc(4);
  win.writeUInt32BE(100);
  for (const make of [
    (p: RawPeer) => p.frame(FrameType.DATA, 0, 5, Buffer.from('x')),
    (p: RawPeer) => p.frame(FrameType.WINDOW_UPDATE, 0, 5, win),
    () => rstStreamFrame(5, ErrorCode.CANCEL),
  ]) {
    const p = await peer(port);
    p.write(make(p));
    assert.equal(await p.goawayCode(), ErrorCode.PROTOCOL_ERROR);
  }
});

test('HEADERS with an even stream id, or on stream 0: GOAWAY PROTOCOL_ERROR', async () => {
  const { port } = await server();
  for (const id of [2, 0]) {
    const p = await peer(port);
    p.write(p.headers(id, CONNECT_LIST));
    assert.equal(await p.goawayCode(), ErrorCode.PROTOCOL_ERROR);
  }
});

test('a malformed CONNECT (with :path) is reset with PROTOCOL_ERROR, the connection stays', async () => {
  const { port } = await server();
  const p = await peer(port);
  p.write(p.headers(1, [...CONNECT_LIST, [':path', '/']]));
  const rst = await p.waitFor((f) => f.type === FrameType.RST_STREAM);
  assert.equal(rst.payload.readUInt32BE(0), ErrorCode.PROTOCOL_ERROR);
  p.write(p.headers(3, CONNECT_LIST));
  await p.waitFor((f) => f.type === FrameType.HEADERS && f.streamId === 3);
});

test('DATA beyond the stream window: RST_STREAM FLOW_CONTROL_ERROR', async () => {
  const { port } = await server({ settings: { initialWindowSize: 65_535 } });
  const p = await peer(port);
  p.write(p.headers(1, CONNECT_LIST));
  p.write(p.frame(FrameType.DATA, 0, 1, Buffer.alloc(70_000)));
  const rst = await p.waitFor((f) => f.type === FrameType.RST_STREAM);
  assert.equal(rst.payload.readUInt32BE(0), ErrorCode.FLOW_CONTROL_ERROR);
});

test('a bad preface, or a first frame other than SETTINGS: GOAWAY PROTOCOL_ERROR', async () => {
  const { port } = await server();
  const a = await peer(port, { settings: false, ack: false });
  a.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.equal(await a.goawayCode(), ErrorCode.PROTOCOL_ERROR);
  const b = await peer(port, { settings: false, ack: false });
  b.write(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), b.frame(FrameType.PING, 0, 0, Buffer.alloc(8)));
  assert.equal(await b.goawayCode(), ErrorCode.PROTOCOL_ERROR);
});

test('SETTINGS never acknowledged: GOAWAY SETTINGS_TIMEOUT', async () => {
  const { port } = await server({ handshakeTimeoutMs: 200 });
  const p = await peer(port, { ack: false });
  assert.equal(await p.goawayCode(), ErrorCode.SETTINGS_TIMEOUT);
});

test('no preface at all: the connection is closed after the handshake timeout', async () => {
  const { port, connections } = await server({ handshakeTimeoutMs: 200 });
  const p = await peer(port, { settings: false, ack: false });
  await p.closed();
  assert.equal(connections[0]!.closed, true);
});

test('a peer that never answers PING is dropped by the keepalive', async () => {
  const { port, connections } = await server({ keepalive: { intervalMs: 100, timeoutMs: 200 } });
  const p = await peer(port);
  await p.waitFor((f) => f.type === FrameType.PING && !(f.flags & Flag.ACK));
  await p.closed();
  assert.equal(connections[0]!.closed, true);
});
