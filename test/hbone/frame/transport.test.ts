/**
 * The framer's TunnelConnection: a stream handed over before its answer carries early data (DATA right
 * after the CONNECT's HEADERS); a server buffers it until it answers, or drops it with the stream.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import type { FramerStream } from '../../../src/hbone/frame/stream.js';
import { connectFramer } from '../../../src/hbone/frame/transport.js';
import type { SpiffeId } from '../../../src/identity/spiffe.js';
import { CONNECT, closeAfterTests, closed, connectTcp, framerServer } from './helpers.js';

const PEER = 'spiffe://cluster.local/ns/b/sa/b' as SpiffeId;

/** Everything readable now, without waiting. */
function readNow(stream: FramerStream): string {
  // read() with no size takes all that is buffered.
  return String((stream.read() as Buffer | null) ?? '');
}

async function tunnelClient(port: number) {
  // h2c: TLS changes nothing the tunnel sees.
  const conn = await connectFramer((await connectTcp(port)) as unknown as TLSSocket, PEER, {
    host: '127.0.0.1',
    port,
  });
  closeAfterTests(() => conn.close());
  return conn;
}

test('early data written before the 200 reaches a server that answers later, intact; then both ways', async () => {
  const seen: string[] = [];
  const { port, server } = await framerServer((stream) => {
    // The upstream connect takes a while: the early bytes wait in the stream, within its window.
    setTimeout(() => {
      seen.push(readNow(stream));
      stream.respond(200);
      stream.on('data', (chunk: Buffer) => stream.write(chunk.toString().toUpperCase()));
      stream.on('end', () => stream.end());
    }, 50);
  });
  closeAfterTests(() => server.close());
  const conn = await tunnelClient(port);
  assert.ok(conn.tryReserve());
  const { stream, answered } = conn.open(CONNECT);
  const received: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => received.push(chunk));
  stream.write('GET / HTTP/1.1\r\n');
  stream.write('\r\n');
  await sleep(20);
  assert.equal(received.length, 0, 'nothing to read before the answer');
  await answered;
  assert.deepEqual(seen, ['GET / HTTP/1.1\r\n\r\n'], 'all of it arrived before the server answered');
  stream.end('more');
  await new Promise((resolve) => stream.once('end', resolve));
  assert.equal(Buffer.concat(received).toString(), 'MORE');
  await closed(stream);
  assert.equal(stream.failure, undefined, 'clean end both ways');
  assert.equal(conn.activeStreams, 0);
});

test('early data with END_STREAM before the answer; a refusing server drops it and the stream', async () => {
  const served: FramerStream[] = [];
  const { port, server } = await framerServer((stream, headers) => {
    served.push(stream);
    setTimeout(() => {
      if (headers[':authority'] === 'deny:1') stream.respond(401);
      else {
        stream.respond(200);
        stream.pipe(stream);
      }
    }, 20);
  });
  closeAfterTests(() => server.close());
  const conn = await tunnelClient(port);

  assert.ok(conn.tryReserve());
  const denied = conn.open({ ...CONNECT, ':authority': 'deny:1' });
  denied.stream.write(Buffer.alloc(32 * 1024, 1));
  await assert.rejects(denied.answered, { code: 'ERR_HBONE_STATUS', status: 401 });
  assert.equal(denied.stream.live, false, 'the stream is gone');

  assert.ok(conn.tryReserve());
  const { stream, answered } = conn.open(CONNECT);
  stream.end('ping');
  await answered;
  const echoed: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => echoed.push(chunk));
  await closed(stream);
  assert.equal(Buffer.concat(echoed).toString(), 'ping');
  assert.equal(stream.failure, undefined);
  await sleep(20);
  assert.equal(conn.connection.streams.size, 0, 'nothing left open on the client');
  assert.ok(
    served.every((s) => !s.live),
    'nor on the server',
  );
});
