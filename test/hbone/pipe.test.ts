/**
 * The socket <-> HBONE stream pipe over real loopback TCP and real HTTP/2 (h2c: TLS changes nothing the
 * pipe sees). An app socket is piped into a CONNECT stream to a peer whose behaviour each test picks;
 * what matters is how the app's connection ends: a clean end of both sides is a FIN (EOF), every
 * abnormal end of the tunnel (RST_STREAM, GOAWAY that cuts the stream, a peer that closes the
 * connection or stops answering PINGs) must reach the app as a TCP reset (RFC 9113 §8.5), and the
 * pipe reports it as an error. The peer is node:http2 (it can misbehave in every way asked of it); this side
 * is the framer (frame/).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2, { type ServerHttp2Stream } from 'node:http2';
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import { addAbortSignal, Duplex } from 'node:stream';
import { afterEach, describe, test } from 'node:test';
import { FramerConnection } from '../../src/hbone/frame/connection.js';
import type { FramerStream } from '../../src/hbone/frame/stream.js';
import { type PipeResult, pipeSocketStream } from '../../src/hbone/pipe.js';
import type { KeepaliveOptions } from '../../src/hbone/settings.js';
import type { TunnelStream } from '../../src/hbone/transport.js';
import { waitFor } from '../helpers/bytes.js';

const { NGHTTP2_NO_ERROR } = http2.constants;
const CHUNK = 64 * 1024;
// Generous: the machine is shared with other test runs.
const DEADLINE_MS = 30_000;

/** How the app's socket ended: after how many bytes, by EOF or by which error. */
interface AppEnd {
  bytes: number;
  end: string;
}

function observe(app: Socket): Promise<AppEnd> {
  return new Promise((resolve) => {
    let bytes = 0;
    app.on('data', (d: Buffer) => {
      bytes += d.length;
    });
    app.once('end', () => resolve({ bytes, end: 'EOF' }));
    app.once('error', (e: NodeJS.ErrnoException) => resolve({ bytes, end: e.code ?? e.message }));
    app.once('close', () => resolve({ bytes, end: 'closed without EOF or error' }));
  });
}

function withDeadline<T>(p: Promise<T>, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), DEADLINE_MS);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function listen(server: Server | http2.Http2Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

/** An app connection: the app's end and the proxy's accepted end of one loopback TCP connection. */
async function appConnection(): Promise<{ app: Socket; proxySide: Socket }> {
  const server = net.createServer({ allowHalfOpen: true });
  const port = await listen(server);
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const app = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const [proxySide] = await accepted;
  server.close();
  app.on('error', () => {});
  proxySide.on('error', () => {});
  cleanups.push(() => {
    app.destroy();
    proxySide.destroy();
  });
  return { app, proxySide };
}

/**
 * A TCP relay between the HTTP/2 client and the peer that can be frozen: it stops moving bytes both
 * ways, as a peer process under SIGSTOP does (its kernel keeps the connection open).
 */
async function freezableRelay(targetPort: number): Promise<{ port: number; freeze(): void }> {
  const pairs: Array<[Socket, Socket]> = [];
  const server = net.createServer((inbound) => {
    const outbound = net.connect({ port: targetPort, host: '127.0.0.1' });
    inbound.on('error', () => {});
    outbound.on('error', () => {});
    inbound.pipe(outbound).pipe(inbound);
    pairs.push([inbound, outbound]);
  });
  const port = await listen(server);
  cleanups.push(() => {
    server.close();
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
  });
  return {
    port,
    freeze() {
      for (const [a, b] of pairs) {
        a.unpipe();
        b.unpipe();
        a.pause();
        b.pause();
      }
    },
  };
}

/** `kill` closes the peer's TCP connection under HTTP/2, as a peer process that dies does. */
type PeerBehaviour = (stream: ServerHttp2Stream, kill: () => void) => void;

/** A peer HTTP/2 server answering CONNECT with 200 and then `behave`. */
async function peer(behave: PeerBehaviour): Promise<{ port: number }> {
  const server = http2.createServer();
  let raw: Socket | undefined;
  server.on('connection', (s: Socket) => {
    raw = s;
  });
  server.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200 });
    behave(stream, () => raw?.destroy());
  });
  server.on('session', (s) => s.on('error', () => {}));
  const port = await listen(server);
  cleanups.push(() => server.close());
  return { port };
}

/** This side as the server: answers each CONNECT with 200 and hands it over. */
async function server(onStream: (stream: TunnelStream) => void): Promise<{ port: number }> {
  const connections: FramerConnection[] = [];
  const tcp = net.createServer((socket) => {
    socket.on('error', () => {});
    const connection = new FramerConnection(socket, 'server', { keepalive: false });
    connections.push(connection);
    connection.on('stream', (stream) => {
      stream.respond(200);
      onStream(stream);
    });
  });
  const port = await listen(tcp);
  cleanups.push(() => {
    tcp.close();
    for (const c of connections) c.destroy();
  });
  return { port };
}

/** This side's HTTP/2 client connection to `port`, opening CONNECT streams. */
interface Tunnel {
  raw: Socket;
  /** The HTTP/2 connection is gone (destroyed or closed). */
  gone(): boolean;
  open(): Promise<TunnelStream>;
}

const CONNECT = { ':method': 'CONNECT', ':authority': '10.0.0.1:8000' };

async function tunnel(port: number, keepalive?: KeepaliveOptions): Promise<Tunnel> {
  const raw = net.connect({ port, host: '127.0.0.1' });
  raw.on('error', () => {});
  const connection = new FramerConnection(raw, 'client', { keepalive: keepalive ?? false });
  cleanups.push(() => connection.destroy());
  return {
    raw,
    gone: () => connection.closed,
    open: () =>
      new Promise((resolve, reject) => {
        // The stream brings its own error listener: the test below checks it needs no other.
        const stream: FramerStream = connection.request(CONNECT);
        stream.once('response', () => resolve(stream));
        stream.once('close', () => reject(new Error('stream closed before the response')));
      }),
  };
}

/** Pipes a fresh app connection through a CONNECT stream to `port`; returns the app's end and the pipe's result. */
async function pipeThrough(port: number, keepalive?: KeepaliveOptions) {
  const { open } = await tunnel(port, keepalive);
  const { app, proxySide } = await appConnection();
  const stream = await open();
  const ended = observe(app);
  const result = pipeSocketStream(proxySide, stream);
  return { app, stream, ended, result };
}

/** The peer sends `n` bytes, then (a moment later) does `after`. */
function sendThen(n: number, after: PeerBehaviour): PeerBehaviour {
  return (stream, kill) => {
    stream.on('data', () => {});
    stream.write(Buffer.alloc(n, 7), () => setTimeout(() => after(stream, kill), 50));
  };
}

async function expectReset(ended: Promise<AppEnd>, result: Promise<PipeResult>, sentByPeer: number) {
  const end = await withDeadline(ended, "the app connection's end");
  assert.equal(
    end.end,
    'ECONNRESET',
    `the app must see a reset, not ${end.end} (after ${end.bytes} of the ${sentByPeer} bytes the peer sent)`,
  );
  const r = await withDeadline(result, 'the pipe result');
  assert.ok(r.error, 'the pipe reports the broken tunnel as an error');
  return r;
}

describe('HBONE pipe over the framer: how the app connection ends', () => {
  test('clean: both sides end (FIN <-> END_STREAM) -> the app sees every byte then EOF, no error', async () => {
    const { port } = await peer((stream) => stream.pipe(stream));
    const { app, ended, result } = await pipeThrough(port);
    app.end(Buffer.alloc(4 * CHUNK, 1));
    const end = await withDeadline(ended, 'EOF');
    assert.deepEqual(end, { bytes: 4 * CHUNK, end: 'EOF' });
    const r = await withDeadline(result, 'the pipe result');
    assert.equal(r.error, undefined);
    assert.equal(r.socketToStream, 4 * CHUNK);
    assert.equal(r.streamToSocket, 4 * CHUNK);
  });

  test('clean: the peer ends first while the app still sends, then the app ends -> EOF, no error', async () => {
    const { port } = await peer((stream) => {
      stream.resume();
      stream.end(Buffer.alloc(CHUNK, 2));
    });
    const { app, ended, result } = await pipeThrough(port);
    const end = await withDeadline(ended, 'EOF');
    assert.deepEqual(end, { bytes: CHUNK, end: 'EOF' });
    app.end(Buffer.alloc(CHUNK, 3));
    const r = await withDeadline(result, 'the pipe result');
    assert.equal(r.error, undefined);
  });

  test('RST_STREAM CANCEL from the peer while the app still sends -> ECONNRESET', async () => {
    // RST_STREAM(CANCEL) alone, as ztunnel's h2 sends for a stream it drops (node:http2's close(CANCEL)
    // would send END_STREAM first); an aborted node:http2 stream is reset with CANCEL.
    const { port } = await peer(
      sendThen(CHUNK, (s) => {
        const abort = new AbortController();
        addAbortSignal(abort.signal, s);
        abort.abort();
      }),
    );
    const { app, ended, result } = await pipeThrough(port);
    app.write(Buffer.alloc(CHUNK, 1));
    await expectReset(ended, result, CHUNK);
  });

  test('RST_STREAM NO_ERROR before the peer finished, the app still sending -> ECONNRESET', async () => {
    // A peer destroying its session resets its open streams with NO_ERROR.
    const { port } = await peer(sendThen(CHUNK, (s) => s.session?.destroy()));
    const { app, ended, result } = await pipeThrough(port);
    app.write(Buffer.alloc(CHUNK, 1));
    await expectReset(ended, result, CHUNK);
  });

  test('the app finished sending, then the peer closes the connection mid-response -> ECONNRESET', async () => {
    const { port } = await peer((stream, kill) => {
      stream.resume();
      stream.once('end', () => stream.write(Buffer.alloc(CHUNK, 7), () => setTimeout(kill, 50)));
    });
    const { app, ended, result } = await pipeThrough(port);
    app.end('request');
    await expectReset(ended, result, CHUNK);
  });

  test('GOAWAY for the stream, then the connection closes with the stream unfinished -> ECONNRESET', async () => {
    const { port } = await peer(
      sendThen(CHUNK, (s, kill) => {
        s.session?.goaway(NGHTTP2_NO_ERROR, s.id);
        setTimeout(kill, 50);
      }),
    );
    const { app, ended, result } = await pipeThrough(port);
    app.write(Buffer.alloc(CHUNK, 1));
    await expectReset(ended, result, CHUNK);
  });

  test('GOAWAY whose last-stream-id is below the stream (the stream is cut) -> ECONNRESET', async () => {
    let first: ServerHttp2Stream | undefined;
    const { port } = await peer((stream) => {
      stream.on('data', () => {});
      if (!first) {
        first = stream;
        return;
      }
      stream.write(Buffer.alloc(CHUNK, 7), () =>
        setTimeout(() => stream.session?.goaway(NGHTTP2_NO_ERROR, first!.id), 50),
      );
    });
    const { gone, open } = await tunnel(port);
    await open(); // stream 1 stays below the last-stream-id
    const { app, proxySide } = await appConnection();
    const stream = await open();
    const ended = observe(app);
    const result = pipeSocketStream(proxySide, stream);
    app.write(Buffer.alloc(CHUNK, 1));
    await expectReset(ended, result, CHUNK);
    assert.equal(gone(), false, 'the connection itself stays up');
  });

  test('the peer stops answering (frozen like SIGSTOP) -> keepalive gives up -> ECONNRESET', async () => {
    const { port: peerPort } = await peer((stream) => {
      stream.on('data', () => {});
      stream.write(Buffer.alloc(CHUNK, 7));
    });
    const relay = await freezableRelay(peerPort);
    const { app, ended, result } = await pipeThrough(relay.port, { intervalMs: 200, timeoutMs: 500 });
    await waitFor(() => app.bytesRead === CHUNK, 'the first bytes', DEADLINE_MS);
    relay.freeze();
    // The app keeps sending into a tunnel that no longer moves (bounded: it blocks on flow control).
    app.write(Buffer.alloc(8 * CHUNK, 1));
    const r = await expectReset(ended, result, CHUNK);
    assert.match(r.error!, /keepalive/i);
  });

  test('the app behind the peer resets (RST_STREAM CONNECT_ERROR) while the client app sends -> ECONNRESET', async () => {
    // The peer is a pipe too (ambit's, over the framer): its upstream app reads a little, then resets.
    const { port } = await server((stream) => {
      void (async () => {
        const { app, proxySide } = await appConnection();
        app.once('data', () => app.resetAndDestroy());
        void pipeSocketStream(proxySide, stream);
      })();
    });
    const { app, ended, result } = await pipeThrough(port);
    app.write(Buffer.alloc(8 * CHUNK, 1));
    const end = await withDeadline(ended, "the app connection's end");
    assert.equal(end.end, 'ECONNRESET', `the app must see a reset, not ${end.end}`);
    const r = await withDeadline(result, 'the pipe result');
    assert.ok(r.error);
  });

  test('reset() sends RST_STREAM alone (no END_STREAM first) and needs no error listener', async () => {
    let seen: Promise<{ ended: boolean; rstCode: number | undefined }> | undefined;
    const { port } = await peer((stream) => {
      seen = new Promise((resolve) => {
        let ended = false;
        stream.on('data', () => {});
        stream.on('end', () => {
          ended = !stream.destroyed;
        });
        stream.on('close', () => resolve({ ended, rstCode: stream.rstCode }));
      });
    });
    const { open } = await tunnel(port);
    const stream = await open();
    stream.write(Buffer.alloc(CHUNK, 1));
    stream.reset('the client went away');
    await waitFor(() => seen !== undefined, 'the peer stream', DEADLINE_MS);
    const peerView = await withDeadline(seen!, 'the reset at the peer');
    assert.equal(peerView.ended, false, 'the peer got no END_STREAM before the reset');
    assert.notEqual(peerView.rstCode, NGHTTP2_NO_ERROR);
  });

  test('the server side: the client connection closes mid-transfer -> the upstream app sees ECONNRESET', async () => {
    let serverSide: Promise<{ end: AppEnd; result: PipeResult }> | undefined;
    const { port } = await server((stream) => {
      serverSide = (async () => {
        const { app, proxySide } = await appConnection();
        const end = observe(app);
        const result = pipeSocketStream(proxySide, stream);
        app.write(Buffer.alloc(CHUNK, 5));
        return { end: await end, result: await result };
      })();
    });
    const { raw, open } = await tunnel(port);
    const stream = await open();
    stream.write(Buffer.alloc(CHUNK, 1));
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    raw.destroy();
    await waitFor(() => serverSide !== undefined, 'the server-side pipe', DEADLINE_MS);
    const { end, result } = await withDeadline(serverSide!, 'the upstream app end');
    assert.equal(
      end.end,
      'ECONNRESET',
      `the upstream app must see a reset, not ${end.end} after ${end.bytes} bytes`,
    );
    assert.ok(result.error, 'reported as an error');
  });
});

/** A stream whose DATA the test hands over itself (push), as the framer does per decrypted record. */
function scriptedStream(): TunnelStream {
  const stream = new Duplex({
    read() {},
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
  return Object.assign(stream, {
    live: true,
    responded: true,
    failure: undefined,
    respond() {},
    refuse() {},
    reset() {},
  }) as unknown as TunnelStream;
}

describe('stream -> socket writes', () => {
  test('a message-sized chunk with no batch open goes to the socket at once; bulk records are corked until the turn ends', async () => {
    const { app, proxySide } = await appConnection();
    const stream = scriptedStream();
    void pipeSocketStream(proxySide, stream);
    let received = 0;
    app.on('data', (d: Buffer) => {
      received += d.length;
    });
    // Flowing from the next turn on; from then on push() hands a chunk over within the call.
    await new Promise((r) => setImmediate(r));

    stream.push(Buffer.alloc(1024, 1));
    assert.equal(proxySide.writableCorked, 0, 'a 1 KiB reply is not held for the end of the turn');
    assert.equal(proxySide.writableLength, 0, 'and is already with the kernel');

    stream.push(Buffer.alloc(16 * 1024, 2));
    stream.push(Buffer.alloc(100, 3));
    assert.equal(
      proxySide.writableCorked,
      1,
      'a 16 KiB record opens a batch, and the small chunk after it joins it',
    );
    assert.equal(proxySide.writableLength, 16 * 1024 + 100);
    await new Promise((r) => setImmediate(r));
    assert.equal(proxySide.writableCorked, 0, 'the batch is written when the turn ends');
    await waitFor(() => received === 1024 + 16 * 1024 + 100, 'the app to get every byte', DEADLINE_MS);
  });
});
