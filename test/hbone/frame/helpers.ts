/** Loopback plumbing for the framer tests: servers on 127.0.0.1, bulk senders and counting readers. */
import { createHash } from 'node:crypto';
import net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { after } from 'node:test';
import { FramerConnection, type FramerOptions } from '../../../src/hbone/frame/connection.js';
import type { FramerStream } from '../../../src/hbone/frame/stream.js';

/** Servers, sessions and peers a test file leaves open; closed after its last test. */
const closers: Array<() => void> = [];
after(() => {
  for (const c of closers.splice(0)) c();
});
export function closeAfterTests(close: () => void): void {
  closers.push(close);
}

export const CONNECT = { ':method': 'CONNECT', ':authority': '10.0.0.2:8080' };

export function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)),
  );
}

export function connectTcp(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.setNoDelay(true);
    s.once('error', reject);
  });
}

/** A framer server on loopback; `onStream` gets each request stream. */
export async function framerServer(
  onStream: (stream: FramerStream, headers: Record<string, string>, conn: FramerConnection) => void,
  options: FramerOptions = {},
): Promise<{ port: number; server: net.Server; connections: FramerConnection[] }> {
  const connections: FramerConnection[] = [];
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    const conn = new FramerConnection(socket, 'server', options);
    connections.push(conn);
    conn.on('stream', (stream, headers) => onStream(stream, headers, conn));
  });
  return { port: await listen(server), server, connections };
}

export async function framerClient(port: number, options: FramerOptions = {}): Promise<FramerConnection> {
  return new FramerConnection(await connectTcp(port), 'client', options);
}

/** Writes `total` bytes of a deterministic pattern in 64 KiB chunks, honouring backpressure; ends. */
export async function sendBulk(w: Writable, total: number, seed = 1): Promise<string> {
  const hash = createHash('sha256');
  const chunk = Buffer.alloc(64 * 1024);
  let sent = 0;
  let n = seed;
  while (sent < total) {
    const size = Math.min(chunk.length, total - sent);
    const piece = Buffer.allocUnsafe(size);
    for (let i = 0; i < size; i += 4096) piece.fill(n++ & 0xff, i, Math.min(size, i + 4096));
    hash.update(piece);
    sent += size;
    if (!w.write(piece))
      await new Promise<void>((resolve, reject) => {
        const done = (err?: Error) => {
          w.off('drain', done);
          w.off('error', done);
          if (err) reject(err);
          else resolve();
        };
        w.on('drain', done);
        w.on('error', done);
      });
  }
  await new Promise<void>((resolve) => w.end(resolve));
  return hash.digest('hex');
}

/** Reads a stream to its end: byte count and sha256. */
export function receiveAll(r: Readable): Promise<{ bytes: number; hash: string }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    r.on('data', (c: Buffer) => {
      bytes += c.length;
      hash.update(c);
    });
    r.once('end', () => resolve({ bytes, hash: hash.digest('hex') }));
    r.once('error', reject);
  });
}

export function once<T = unknown>(emitter: NodeJS.EventEmitter, event: string): Promise<[T, ...unknown[]]> {
  return new Promise((resolve) =>
    emitter.once(event, (...args: unknown[]) => resolve(args as [T, ...unknown[]])),
  );
}

/** Resolves once a stream has closed (at once if it already has). */
export function closed(
  stream: import('node:stream').Duplex | import('node:http2').Http2Stream,
): Promise<void> {
  if (stream.closed || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => stream.once('close', () => resolve()));
}
