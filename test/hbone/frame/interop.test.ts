/**
 * The framer against node:http2 over loopback TCP, both ways: CONNECT, bulk both directions at once, a clean
 * end (END_STREAM both ways), and a reset.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { test } from 'node:test';
import type { FramerStream } from '../../../src/hbone/frame/stream.js';
import {
  CONNECT,
  closeAfterTests,
  closed,
  framerClient,
  framerServer,
  listen,
  once,
  receiveAll,
  sendBulk,
} from './helpers.js';

const BULK = 16 * 1024 * 1024;
const WINDOWS = { initialWindowSize: 4 * 1024 * 1024 };

async function nodeServer(onStream: (s: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders) => void) {
  const server = http2.createServer({ settings: WINDOWS });
  server.on('stream', onStream);
  server.on('session', (session) => session.setLocalWindowSize(16 * 1024 * 1024));
  const port = await listen(server as unknown as import('node:net').Server);
  closeAfterTests(() => server.close());
  return port;
}

test('framer client -> node:http2 server: CONNECT 200, bulk both ways at once, clean end', async () => {
  let serverSide: Promise<{ got: { bytes: number; hash: string }; sentHash: string }> | undefined;
  const port = await nodeServer((stream, headers) => {
    assert.equal(headers[':method'], 'CONNECT');
    assert.equal(headers[':authority'], '10.0.0.2:8080');
    stream.respond({ ':status': 200 });
    serverSide = Promise.all([receiveAll(stream), sendBulk(stream, BULK, 7)]).then(([got, sentHash]) => ({
      got,
      sentHash,
    }));
  });
  const conn = await framerClient(port);
  const stream = conn.request(CONNECT);
  const [status] = await once<number>(stream, 'response');
  assert.equal(status, 200);
  const [got, sentHash] = await Promise.all([receiveAll(stream), sendBulk(stream, BULK, 3)]);
  const server = await serverSide!;
  assert.equal(got.bytes, BULK);
  assert.equal(got.hash, server.sentHash);
  assert.equal(server.got.bytes, BULK);
  assert.equal(server.got.hash, sentHash);
  await closed(stream);
  assert.equal(stream.rstCode, undefined);
  assert.equal(conn.streams.size, 0);
  conn.close();
  await once(conn, 'close');
});

test('framer client -> node:http2 server: the server resets, the client sees ERR_HBONE_STREAM_RESET', async () => {
  const port = await nodeServer((stream) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200 });
    stream.once('data', () => stream.close(http2.constants.NGHTTP2_CONNECT_ERROR));
  });
  const conn = await framerClient(port);
  const stream = conn.request(CONNECT);
  await once(stream, 'response');
  stream.write('hello');
  const [err] = await once<Error & { code: string; h2Code: string }>(stream, 'error');
  assert.equal(err.code, 'ERR_HBONE_STREAM_RESET');
  assert.equal(err.h2Code, 'CONNECT_ERROR');
  // The connection lives on: a second stream works.
  const again = conn.request(CONNECT);
  again.on('error', () => {});
  const [status] = await once<number>(again, 'response');
  assert.equal(status, 200);
  conn.destroy();
});

test('framer client -> node:http2 server: a client reset reaches the server as RST_STREAM', async () => {
  let serverStream: http2.ServerHttp2Stream | undefined;
  const port = await nodeServer((stream) => {
    serverStream = stream;
    stream.respond({ ':status': 200 });
  });
  const conn = await framerClient(port);
  const stream = conn.request(CONNECT);
  await once(stream, 'response');
  stream.reset('cancelled by the test', http2.constants.NGHTTP2_CANCEL);
  await closed(serverStream!);
  assert.equal(serverStream!.rstCode, http2.constants.NGHTTP2_CANCEL);
  conn.destroy();
});

function nodeClient(port: number) {
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings: WINDOWS });
  session.on('error', () => {});
  session.once('connect', () => session.setLocalWindowSize(16 * 1024 * 1024));
  closeAfterTests(() => session.destroy());
  return session;
}

test('node:http2 client -> framer server: CONNECT 200, bulk both ways at once, clean end', async () => {
  let serverSide: Promise<{ got: { bytes: number; hash: string }; sentHash: string }> | undefined;
  const { port, server } = await framerServer((stream, headers) => {
    assert.equal(headers[':method'], 'CONNECT');
    assert.equal(headers[':authority'], '10.0.0.2:8080');
    stream.respond(200);
    serverSide = Promise.all([receiveAll(stream), sendBulk(stream, BULK, 5)]).then(([got, sentHash]) => ({
      got,
      sentHash,
    }));
  });
  closeAfterTests(() => server.close());
  const session = nodeClient(port);
  const req = session.request(CONNECT, { endStream: false });
  const [headers] = await once<http2.IncomingHttpHeaders>(req, 'response');
  assert.equal(headers[':status'], 200);
  const [got, sentHash] = await Promise.all([receiveAll(req), sendBulk(req, BULK, 9)]);
  const server2 = await serverSide!;
  assert.equal(got.bytes, BULK);
  assert.equal(got.hash, server2.sentHash);
  assert.equal(server2.got.bytes, BULK);
  assert.equal(server2.got.hash, sentHash);
  await closed(req);
  assert.equal(req.rstCode, http2.constants.NGHTTP2_NO_ERROR);
  session.close();
});

test('node:http2 client -> framer server: resets both ways; 503 with END_STREAM', async () => {
  const streams: FramerStream[] = [];
  const { port, server } = await framerServer((stream, headers) => {
    stream.on('error', () => {});
    streams.push(stream);
    if (headers[':authority'] === 'refuse:1') stream.respond(503, {}, { endStream: true });
    else stream.respond(200);
  });
  closeAfterTests(() => server.close());
  const session = nodeClient(port);
  // Client resets: the framer stream fails with CANCEL.
  const a = session.request(CONNECT, { endStream: false });
  await once(a, 'response');
  a.close(http2.constants.NGHTTP2_CANCEL);
  const [errA] = await once<Error & { h2Code: string }>(streams[0]!, 'error');
  assert.equal(errA.h2Code, 'CANCEL');
  // Server resets: node sees the code.
  const b = session.request(CONNECT, { endStream: false });
  b.on('error', () => {});
  await once(b, 'response');
  streams[1]!.reset('reset by the test', http2.constants.NGHTTP2_CONNECT_ERROR);
  await closed(b);
  assert.equal(b.rstCode, http2.constants.NGHTTP2_CONNECT_ERROR);
  // A refusal with a status.
  const c = session.request({ ':method': 'CONNECT', ':authority': 'refuse:1' }, { endStream: false });
  const [h] = await once<http2.IncomingHttpHeaders>(c, 'response');
  assert.equal(h[':status'], 503);
  c.resume();
  session.close();
});
