/**
 * Micro-benchmark of HBONE's HTTP/2 layer on loopback: bulk bytes through one CONNECT stream over TLS 1.3,
 * ambit's framer against node:http2 (ambit's current 1 MiB / 4 MiB windows) and plain TLS without HTTP/2.
 * The server side runs in a child process (as the two ztunnels of a tunnel do), the client here. Rounds
 * alternate between the variants; medians are printed with the CPU seconds per GiB of both processes.
 *
 *   node dist/bench/h2-framer.js [--mib 256] [--rounds 5] [--dir up|down|bidi|all]
 *
 * bidi: both ways at once, MB/s counts the bytes of both directions.
 */
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { FramerConnection } from '../src/hbone/frame/connection.js';

const CHUNK = Buffer.alloc(64 * 1024, 0x5a);
const CONNECT = { ':method': 'CONNECT', ':authority': '10.0.0.2:8080' };
const H2_SETTINGS = { initialWindowSize: 1024 * 1024, maxFrameSize: 1024 * 1024 };
const H2_CONNECTION_WINDOW = 4 * 1024 * 1024;
type Variant = 'tls' | 'node-http2' | 'framer';
type Direction = 'up' | 'down' | 'bidi';
const VARIANTS: Variant[] = ['tls', 'node-http2', 'framer'];
const SPEC_LENGTH = 32;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

/** Writes `bytes` then ends, honouring backpressure. */
async function pump(w: Duplex | http2.Http2Stream, bytes: number): Promise<void> {
  let left = bytes;
  while (left > 0) {
    const piece = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
    left -= piece.length;
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
  w.end();
}

/** Reads to the end; the byte count. */
function drain(r: Duplex | http2.Http2Stream): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    r.on('data', (c: Buffer) => {
      n += c.length;
    });
    r.once('end', () => resolve(n));
    r.once('error', reject);
  });
}

/** The server side of one transfer: reads to the end (up) or sends `bytes` (down), then ends. */
function serveTransfer(s: Duplex | http2.Http2Stream, dir: Direction, bytes: number): void {
  if (dir === 'up')
    drain(s).then(
      () => s.end(),
      () => {},
    );
  else {
    s.resume();
    pump(s, bytes).catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------- server

function runServer(): void {
  const key = readFileSync(process.env.BENCH_KEY!);
  const cert = readFileSync(process.env.BENCH_CERT!);
  // The transfer's direction and size come in the request (:authority's port is not used).
  const parse = (s: string) => {
    const [dir, bytes] = s.split(':');
    return { dir: dir as Direction, bytes: Number(bytes) };
  };
  const plain = tls.createServer({ key, cert, allowHalfOpen: true }, (socket) => {
    socket.setNoDelay(true);
    // A fixed-size spec first, read exactly: the bulk bytes follow it at once.
    const onReadable = () => {
      const head = socket.read(SPEC_LENGTH) as Buffer | null;
      if (!head) return void socket.once('readable', onReadable);
      const { dir, bytes } = parse(head.toString().trim());
      serveTransfer(socket, dir, bytes);
      socket.resume(); // 'readable' left the socket paused
    };
    socket.once('readable', onReadable);
  });
  const h2 = http2.createSecureServer({ key, cert, settings: H2_SETTINGS });
  h2.on('session', (session) => {
    session.once('connect', () => session.setLocalWindowSize(H2_CONNECTION_WINDOW));
  });
  h2.on('stream', (stream, headers) => {
    stream.respond({ ':status': 200 });
    const { dir, bytes } = parse(String(headers['x-transfer']));
    serveTransfer(stream, dir, bytes);
  });
  const framer = tls.createServer({ key, cert, ALPNProtocols: ['h2'] }, (socket) => {
    socket.setNoDelay(true);
    const conn = new FramerConnection(socket, 'server');
    conn.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      stream.respond(200);
      const { dir, bytes } = parse(String(headers['x-transfer']));
      serveTransfer(stream, dir, bytes);
    });
  });
  process.on('disconnect', () => process.exit(0));
  let cpuStart = process.cpuUsage();
  process.on('message', (m: string) => {
    if (m === 'cpu-start') cpuStart = process.cpuUsage();
    if (m === 'cpu-end') {
      const d = process.cpuUsage(cpuStart);
      process.send!({ cpu: (d.user + d.system) / 1e6 });
    }
  });
  const ports: Record<string, number> = {};
  const servers: Array<[Variant, tls.Server | http2.Http2SecureServer]> = [
    ['tls', plain],
    ['node-http2', h2],
    ['framer', framer],
  ];
  let pending = servers.length;
  for (const [name, server] of servers)
    server.listen(0, '127.0.0.1', () => {
      ports[name] = (server.address() as { port: number }).port;
      if (--pending === 0) process.send!({ ports });
    });
}

// ---------------------------------------------------------------------------------------------- client

/** One transfer on a connection made for it; resolves with seconds from the first byte written. */
async function transfer(
  variant: Variant,
  port: number,
  cert: Buffer,
  dir: Direction,
  bytes: number,
): Promise<number> {
  const spec = `${dir}:${bytes}`;
  if (variant === 'tls') {
    // Half-open (honoured by net.Socket, missing from the TLS typings): the server may finish sending
    // first while this side still sends.
    const options: tls.ConnectionOptions & { allowHalfOpen: boolean } = {
      port,
      host: '127.0.0.1',
      ca: cert,
      servername: 'bench',
      allowHalfOpen: true,
    };
    const socket = tls.connect(options);
    socket.setNoDelay(true);
    await new Promise((r) => socket.once('secureConnect', r));
    const start = performance.now();
    socket.write(spec.padEnd(SPEC_LENGTH));
    if (dir !== 'down') await Promise.all([pump(socket, bytes), drain(socket)]);
    else {
      socket.end();
      await drain(socket);
    }
    socket.destroy();
    return (performance.now() - start) / 1000;
  }
  if (variant === 'node-http2') {
    const session = http2.connect(`https://127.0.0.1:${port}`, {
      ca: cert,
      servername: 'bench',
      settings: H2_SETTINGS,
    });
    await new Promise((r) => session.once('connect', r));
    session.setLocalWindowSize(H2_CONNECTION_WINDOW);
    const start = performance.now();
    const stream = session.request({ ...CONNECT, 'x-transfer': spec }, { endStream: false });
    await new Promise((r) => stream.once('response', r));
    if (dir !== 'down') await Promise.all([pump(stream, bytes), drain(stream)]);
    else {
      stream.end();
      await drain(stream);
    }
    session.destroy();
    return (performance.now() - start) / 1000;
  }
  const socket = tls.connect({
    port,
    host: '127.0.0.1',
    ca: cert,
    servername: 'bench',
    ALPNProtocols: ['h2'],
  });
  socket.setNoDelay(true);
  await new Promise((r) => socket.once('secureConnect', r));
  const conn = new FramerConnection(socket, 'client');
  const start = performance.now();
  const stream = conn.request({ ...CONNECT, 'x-transfer': spec });
  await new Promise((r) => stream.once('response', r));
  if (dir !== 'down') await Promise.all([pump(stream, bytes), drain(stream)]);
  else {
    stream.end();
    await drain(stream);
  }
  conn.destroy();
  socket.destroy();
  return (performance.now() - start) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const mib = Number(arg('mib', '256'));
  const rounds = Number(arg('rounds', '5'));
  const dirArg = arg('dir', 'up');
  const dirs: Direction[] = dirArg === 'all' ? ['up', 'down', 'bidi'] : [dirArg as Direction];
  const bytes = mib * 1024 * 1024;
  const dir = mkdtempSync(join(tmpdir(), 'ambit-h2-framer-bench-'));
  let child: ChildProcess | undefined;
  try {
    const keyPath = join(dir, 'key.pem');
    const certPath = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=bench',
        '-addext',
        'subjectAltName=DNS:bench',
        '-keyout',
        keyPath,
        '-out',
        certPath,
      ],
      { stdio: 'ignore' },
    );
    const cert = readFileSync(certPath);
    child = fork(process.argv[1]!, ['--serve'], {
      env: { ...process.env, BENCH_KEY: keyPath, BENCH_CERT: certPath },
    });
    const ports = await new Promise<Record<Variant, number>>((resolve) =>
      child!.once('message', (m: { ports: Record<Variant, number> }) => resolve(m.ports)),
    );
    const serverCpu = () =>
      new Promise<number>((resolve) => {
        child!.once('message', (m: { cpu: number }) => resolve(m.cpu));
        child!.send('cpu-end');
      });
    const results = new Map<string, Array<{ mbps: number; cpuPerGiB: number }>>();
    // One warm-up transfer each, not counted.
    for (const v of VARIANTS) await transfer(v, ports[v], cert, 'up', 16 * 1024 * 1024);
    for (let round = 0; round < rounds; round++) {
      for (const d of dirs) {
        for (const v of round % 2 ? [...VARIANTS].reverse() : VARIANTS) {
          child!.send('cpu-start');
          const cpu0 = process.cpuUsage();
          const seconds = await transfer(v, ports[v], cert, d, bytes);
          const c = process.cpuUsage(cpu0);
          const cpu = (c.user + c.system) / 1e6 + (await serverCpu());
          const key = `${v} ${d}`;
          const moved = d === 'bidi' ? 2 * bytes : bytes;
          const list = results.get(key) ?? [];
          list.push({ mbps: moved / 1e6 / seconds, cpuPerGiB: cpu / (moved / 2 ** 30) });
          results.set(key, list);
          console.error(`round ${round + 1} ${key}: ${(moved / 1e6 / seconds).toFixed(0)} MB/s`);
        }
      }
    }
    console.log(
      `\n${mib} MiB per transfer, ${rounds} rounds, medians (loopback, TLS 1.3, one CONNECT stream)`,
    );
    console.log('| variant | dir | MB/s | x tls | CPU s/GiB (both ends) | runs MB/s |');
    console.log('|---|---|---|---|---|---|');
    for (const d of dirs) {
      const tlsMedian = median(results.get(`tls ${d}`)!.map((r) => r.mbps));
      for (const v of VARIANTS) {
        const list = results.get(`${v} ${d}`)!;
        const mbps = median(list.map((r) => r.mbps));
        console.log(
          `| ${v} | ${d} | ${mbps.toFixed(0)} | ${(mbps / tlsMedian).toFixed(2)} | ${median(list.map((r) => r.cpuPerGiB)).toFixed(2)} | ${list.map((r) => r.mbps.toFixed(0)).join(' ')} |`,
        );
      }
    }
  } finally {
    child?.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--serve')) runServer();
else
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
