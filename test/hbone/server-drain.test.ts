/**
 * A draining HBONE server (its ztunnel is being replaced) over real loopback TCP and real HTTP/2: the
 * client is told to go away (GOAWAY NO_ERROR) and opens nothing new there, while a CONNECT stream in
 * flight keeps carrying bytes both ways and ends cleanly. A stream the server refuses unprocessed
 * reaches the client as ERR_HBONE_REFUSED, which the proxy opens again on another connection. The server
 * is the framer's; the client is node:http2, a foreign peer, except where ambit's own client is the point.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import net, { type AddressInfo, type Server } from 'node:net';
import { afterEach, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { connectFramer, FramerTunnelServer } from '../../src/hbone/frame/transport.js';
import type { SpiffeId } from '../../src/identity/spiffe.js';

const PEER = 'spiffe://cluster.local/ns/a/sa/b' as SpiffeId;
const { NGHTTP2_NO_ERROR } = http2.constants;

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

/** An HBONE server whose CONNECT streams echo; `refuse` makes it refuse every stream unprocessed. */
async function startServer(refuse = false): Promise<{ hbone: FramerTunnelServer; port: number }> {
  const hbone = new FramerTunnelServer((stream) => {
    if (refuse) {
      stream.refuse();
      return;
    }
    stream.respond(200);
    stream.pipe(stream);
  });
  const tcp: Server = net.createServer((socket) => {
    socket.on('error', () => {});
    hbone.serve(socket, PEER);
  });
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  cleanup.push(() => {
    hbone.close();
    tcp.close();
  });
  return { hbone, port: (tcp.address() as AddressInfo).port };
}

function connect(port: number): ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  cleanup.push(() => session.destroy());
  return session;
}

const CONNECT = { ':method': 'CONNECT', ':authority': '10.0.0.1:8080' };

async function echo(stream: ClientHttp2Stream, text: string): Promise<string> {
  stream.write(text);
  let got = '';
  while (got.length < text.length) {
    const [chunk] = await once(stream, 'data');
    got += chunk.toString();
  }
  return got;
}

describe('HBONE server drain', () => {
  test('GOAWAY NO_ERROR; the stream in flight carries on and ends cleanly; no new stream; the session closes', async () => {
    const { hbone, port } = await startServer();
    const session = connect(port);
    const stream = session.request(CONNECT, { endStream: false });
    const [headers] = await once(stream, 'response');
    assert.equal(headers[':status'], 200);
    assert.equal(await echo(stream, 'before'), 'before');

    const goaway = once(session, 'goaway');
    hbone.drain();
    const [code] = await goaway;
    assert.equal(code, NGHTTP2_NO_ERROR, 'a graceful GOAWAY');

    // The stream opened before the GOAWAY still works both ways...
    assert.equal(await echo(stream, 'during the drain'), 'during the drain');
    // ...and no new stream can start on this session.
    assert.throws(() => session.request(CONNECT, { endStream: false }), /ERR_HTTP2_GOAWAY_SESSION|closed/i);

    // A clean end: END_STREAM both ways, no reset.
    stream.end();
    const rest: string[] = [];
    stream.on('data', (c) => rest.push(c.toString()));
    await once(stream, 'end');
    await once(stream, 'close');
    assert.equal(stream.rstCode, NGHTTP2_NO_ERROR, 'closed without a reset');
    await once(session, 'close');
    assert.equal(hbone.connectionCount, 0);
  });

  test('close() (an immediate stop) still cuts the stream in flight', async () => {
    const { hbone, port } = await startServer();
    const session = connect(port);
    const stream = session.request(CONNECT, { endStream: false });
    await once(stream, 'response');
    assert.equal(await echo(stream, 'x'), 'x');
    stream.on('error', () => {});
    const closed = new Promise((r) => stream.once('close', r));
    hbone.close();
    await closed;
    assert.notEqual(stream.rstCode, NGHTTP2_NO_ERROR, 'reset, not ended');
  });

  test('a stream refused unprocessed is ERR_HBONE_REFUSED (retryable), not a failed CONNECT', async () => {
    const { port } = await startServer(true);
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.on('error', () => {});
    cleanup.push(() => socket.destroy());
    // h2c: TLS changes nothing the tunnel sees.
    const conn = await connectFramer(socket as unknown as TLSSocket, PEER, { host: '127.0.0.1', port });
    cleanup.push(() => conn.close());
    assert.ok(conn.tryReserve());
    await assert.rejects(async () => conn.open(CONNECT).answered, { code: 'ERR_HBONE_REFUSED' });
  });
});
