/**
 * Load generators, run from inside the client pod's netns (sockets made with connectInNetns, so the
 * pod's rules apply to them exactly as to an app's).
 */
import type { Socket } from 'node:net';
import { connected, connectInNetns, type NetnsHandle } from '../src/sys/index.js';

export interface Target {
  netns: NetnsHandle;
  host: string;
  port: number;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
}

function percentiles(samplesUs: number[]): Percentiles {
  const s = [...samplesUs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

function open(t: Target): Promise<Socket> {
  return connected(
    connectInNetns(t.netns, { host: t.host, port: t.port, allowHalfOpen: true, noDelay: true }),
  );
}

/**
 * The next `n` bytes; a connection that ends or closes first fails the measurement instead of hanging it
 * (half-open sockets: the peer's end alone never closes them).
 */
function readN(socket: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const done = () => {
      socket.off('data', onData);
      socket.off('error', reject);
      socket.off('end', onClose);
      socket.off('close', onClose);
    };
    const onData = (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got >= n) {
        done();
        resolve(Buffer.concat(chunks));
      }
    };
    const onClose = () => {
      done();
      reject(
        new Error(
          `connection to ${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'} closed after ${got} of ${n} bytes`,
        ),
      );
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('end', onClose);
    socket.once('close', onClose);
  });
}

/** Sends `bytes` on one connection; the server replies with its count after EOF. MB/s (10^6). */
export async function bulkThroughput(t: Target, bytes: number): Promise<number> {
  const socket = await open(t);
  try {
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    const started = process.hrtime.bigint();
    const ack = readN(socket, 8);
    // A connection that breaks mid-send never drains: its failure (in `ack`) ends the wait instead.
    const ackOrDrain = () => Promise.race([ack, new Promise((r) => socket.once('drain', r))]);
    socket.write('S');
    let sent = 0;
    while (sent < bytes) {
      const n = Math.min(chunk.length, bytes - sent);
      sent += n;
      if (!socket.write(n === chunk.length ? chunk : chunk.subarray(0, n))) await ackOrDrain();
    }
    socket.end();
    const count = (await ack).readBigUInt64BE(0);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (count !== BigInt(bytes)) throw new Error(`server counted ${count} bytes, sent ${bytes}`);
    return bytes / seconds / 1e6;
  } finally {
    socket.destroy();
  }
}

/** Round trips of `size` bytes on one connection; microseconds per round trip. */
export async function requestResponse(t: Target, size: number, iterations: number): Promise<Percentiles> {
  const socket = await open(t);
  try {
    socket.write('E');
    const payload = Buffer.alloc(size, 0x62);
    const samples: number[] = [];
    for (let i = 0; i < iterations; i++) {
      const started = process.hrtime.bigint();
      const reply = readN(socket, size);
      socket.write(payload);
      await reply;
      samples.push(Number(process.hrtime.bigint() - started) / 1000);
    }
    return percentiles(samples);
  } finally {
    socket.destroy();
  }
}

/** New connection, one round trip of `size` bytes, close; microseconds per connection. */
export async function connectionRate(t: Target, size: number, iterations: number): Promise<Percentiles> {
  const payload = Buffer.alloc(size, 0x63);
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const started = process.hrtime.bigint();
    const socket = await open(t);
    try {
      const reply = readN(socket, size);
      socket.write(Buffer.concat([Buffer.from('E'), payload]));
      await reply;
    } finally {
      socket.destroy();
    }
    samples.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  return percentiles(samples);
}
