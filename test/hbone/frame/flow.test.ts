/**
 * Flow control under bidirectional bulk with Istio's windows (4 MiB stream, 16 MiB connection): two
 * node:http2 ends deadlock here; the framer always reads its socket, so it must not.
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

const BULK = 64 * 1024 * 1024;

test('framer <-> framer: 64 MiB each way at once on one stream, no deadlock, clean end', async () => {
  let serverSide: Promise<[{ bytes: number; hash: string }, string]> | undefined;
  const { port, server } = await framerServer((stream) => {
    stream.respond(200);
    serverSide = Promise.all([receiveAll(stream), sendBulk(stream, BULK, 11)]);
  });
  closeAfterTests(() => server.close());
  const conn = await framerClient(port);
  const stream = conn.request(CONNECT);
  await once(stream, 'response');
  const [got, sentHash] = await Promise.all([receiveAll(stream), sendBulk(stream, BULK, 13)]);
  const [serverGot, serverSentHash] = await serverSide!;
  assert.equal(got.bytes, BULK);
  assert.equal(got.hash, serverSentHash);
  assert.equal(serverGot.bytes, BULK);
  assert.equal(serverGot.hash, sentHash);
  await closed(stream);
  assert.equal(conn.streams.size, 0);
  conn.close();
  await once(conn, 'close');
});

test('framer <-> framer: four streams 16 MiB each way at once share the connection window', async () => {
  const { port, server } = await framerServer((stream) => {
    stream.respond(200);
    stream.pipe(stream); // echo
  });
  closeAfterTests(() => server.close());
  const conn = await framerClient(port);
  const runs = Array.from({ length: 4 }, async (_, i) => {
    const stream = conn.request(CONNECT);
    await once(stream, 'response');
    const [got, sentHash] = await Promise.all([receiveAll(stream), sendBulk(stream, 16 * 1024 * 1024, i)]);
    assert.equal(got.bytes, 16 * 1024 * 1024);
    assert.equal(got.hash, sentHash);
  });
  await Promise.all(runs);
  conn.close();
  await once(conn, 'close');
});

test('a reader that stops stalls only its own stream; its unread bytes stay within the stream window', async () => {
  const serverStreams: FramerStream[] = [];
  const { port, server } = await framerServer((stream) => {
    serverStreams.push(stream);
    stream.respond(200);
  });
  closeAfterTests(() => server.close());
  const conn = await framerClient(port, { streamHighWaterMark: 64 * 1024 });
  const slow = conn.request(CONNECT);
  await once(slow, 'response');
  // The server writes 32 MiB that nobody reads on the client.
  const blocked = sendBulk(serverStreams[0]!, 32 * 1024 * 1024).catch(() => '');
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(slow.readableLength <= 4 * 1024 * 1024 + 1024 * 1024, `buffered ${slow.readableLength}`);
  // Another stream still moves data.
  const fast = conn.request(CONNECT);
  await once(fast, 'response');
  const echo = serverStreams[1]!;
  echo.pipe(echo);
  const [got, sentHash] = await Promise.all([receiveAll(fast), sendBulk(fast, 8 * 1024 * 1024, 2)]);
  assert.equal(got.hash, sentHash);
  // Reading the slow one drains everything.
  const rest = await receiveAll(slow);
  await blocked;
  assert.equal(rest.bytes, 32 * 1024 * 1024);
  slow.end(); // the client's half was still open: a graceful close waits for it
  conn.close();
  await once(conn, 'close');
});

test('framer client <-> node:http2 server with a 16 MiB connection window: 64 MiB each way at once', async () => {
  let serverSide: Promise<[{ bytes: number; hash: string }, string]> | undefined;
  const server = http2.createServer({ settings: { initialWindowSize: 4 * 1024 * 1024 } });
  server.on('session', (session) => session.setLocalWindowSize(16 * 1024 * 1024));
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    serverSide = Promise.all([receiveAll(stream), sendBulk(stream, BULK, 17)]);
  });
  const port = await listen(server as unknown as Server);
  closeAfterTests(() => server.close());
  const conn = await framerClient(port);
  const stream = conn.request(CONNECT);
  await once(stream, 'response');
  const [got, sentHash] = await Promise.all([receiveAll(stream), sendBulk(stream, BULK, 19)]);
  const [serverGot, serverSentHash] = await serverSide!;
  assert.equal(got.hash, serverSentHash);
  assert.equal(serverGot.hash, sentHash);
  conn.close();
  await once(conn, 'close');
});
