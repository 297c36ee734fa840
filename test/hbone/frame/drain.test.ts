/**
 * GOAWAY on shutdown: streams in flight finish, new ones are refused, the connection ends when the last
 * stream is done. And the peer's GOAWAY: our streams beyond its last stream id fail as refused (retryable).
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { Server } from 'node:net';
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

test('server GOAWAY: the stream in flight finishes both ways, a new request is refused, then the socket ends', async () => {
  const streams: FramerStream[] = [];
  const { port, server, connections } = await framerServer((stream) => {
    streams.push(stream);
    stream.respond(200);
    stream.pipe(stream);
  });
  closeAfterTests(() => server.close());
  const conn = await framerClient(port);
  const stream = conn.request(CONNECT);
  await once(stream, 'response');
  const receiving = receiveAll(stream);
  stream.write(Buffer.alloc(1024 * 1024, 1));
  const serverConn = connections[0]!;
  serverConn.close();
  const [code] = await once<number>(conn, 'goaway');
  assert.equal(code, 0);
  assert.throws(() => conn.request(CONNECT), { code: 'ERR_H2_CLOSED' });
  // The stream still carries data both ways and ends clean.
  const sentHash = await sendBulk(stream, 4 * 1024 * 1024, 3);
  const got = await receiving;
  assert.equal(got.bytes, 5 * 1024 * 1024);
  assert.notEqual(sentHash, '');
  await closed(stream);
  assert.equal(stream.rstCode, undefined);
  if (!conn.closed) await once(conn, 'close');
  assert.equal(serverConn.closed, true);
});

test('node:http2 server GOAWAY with a last stream id: the framer fails later streams as refused', async () => {
  const server = http2.createServer();
  let session: http2.ServerHttp2Session | undefined;
  server.on('session', (s) => {
    session = s;
  });
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    stream.resume();
    stream.on('end', () => stream.end());
  });
  const port = await listen(server as unknown as Server);
  closeAfterTests(() => server.close());
  const conn = await framerClient(port);
  const first = conn.request(CONNECT);
  await once(first, 'response');
  // Stream 3 is in the air when the server says it processed only stream 1.
  const second = conn.request(CONNECT);
  session!.goaway(http2.constants.NGHTTP2_NO_ERROR, 1);
  const [err] = await once<Error & { code: string }>(second, 'error');
  assert.equal(err.code, 'ERR_HBONE_REFUSED');
  first.end();
  first.resume();
  await closed(first);
  assert.equal(first.rstCode, undefined);
});

test('node:http2 client -> framer server shutting down: the in-flight stream finishes', async () => {
  const { port, server, connections } = await framerServer((stream) => {
    stream.respond(200);
    stream.pipe(stream);
  });
  closeAfterTests(() => server.close());
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  closeAfterTests(() => session.destroy());
  const req = session.request(CONNECT, { endStream: false });
  await once(req, 'response');
  const goaway = once(session, 'goaway');
  connections[0]!.close();
  await goaway;
  const [got, sentHash] = await Promise.all([receiveAll(req), sendBulk(req, 2 * 1024 * 1024, 5)]);
  assert.equal(got.hash, sentHash);
  await closed(req);
  assert.equal(req.rstCode, http2.constants.NGHTTP2_NO_ERROR);
});
