/**
 * What a pod can do to a node's ztunnel by opening connections: a one-node lab with the real `ambit
 * ztunnel` process, n1-pod1 (client) and n1-pod2 (server, echo app on 8000) in the mesh, n1-pod3 outside
 * it. n1-pod3 floods n1-pod2's :15008 with idle and slowloris connections; later the process is pushed to
 * its fd limit with meshed connections. The process's fds and RSS are read from /proc.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connectHbone, HboneTlsContexts } from '../../../src/hbone/tls.js';
import { LocalCa } from '../../../src/identity/local-ca.js';
import { CertificateManager } from '../../../src/identity/manager.js';
import { parseSpiffeId } from '../../../src/identity/spiffe.js';
import { httpStatusIn } from '../../../src/lab/http-in-netns.js';
import { type LabPod, type LabState, labDown, labUp } from '../../../src/lab/index.js';
import { connected, connectInNetns, listenInNetns, NetnsHandle } from '../../../src/sys/index.js';
import { readAll, sha256 } from '../../helpers/bytes.js';
import { LabMesh } from '../../helpers/lab-mesh.js';
import { run, uniqueLabCidrs } from '../../helpers/netns.js';
import { eventually } from '../../ztunnel/fixtures/ztunnel-cli.js';

const HANDSHAKE_TIMEOUT_S = 3;
const IDLE = 2000;
const SLOWLORIS = 500;
/** The start of a TLS 1.2/1.3 ClientHello record; slowloris clients send it one byte at a time. */
const CLIENT_HELLO_PREFIX = Buffer.from(
  '160301020001' + '0001fc0303' + randomBytes(32).toString('hex') + '20' + randomBytes(32).toString('hex'),
  'hex',
);

/** One HTTP/2 frame: 9-byte header + payload. */
function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK block of literal fields without indexing (no Huffman): enough for a CONNECT request. */
function hpackLiterals(fields: Array<[string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    parts.push(
      Buffer.from([0x00, name.length]),
      Buffer.from(name),
      Buffer.from([value.length]),
      Buffer.from(value),
    );
  }
  return Buffer.concat(parts);
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const FRAME_HEADERS = 0x1;
const FRAME_RST_STREAM = 0x3;
const FRAME_SETTINGS = 0x4;
const FRAME_GOAWAY = 0x7;
const END_HEADERS = 0x4;
const CANCEL = Buffer.from([0, 0, 0, 8]);

/** The netns's TCP counters that tell why connections were dropped or reset (nstat, absolute values). */
function tcpCounters(netns: string): Map<string, number> {
  const out = run('ip', ['netns', 'exec', netns, 'nstat', '-az']);
  const counters = new Map<string, number>();
  for (const line of out.split('\n')) {
    const [name, value] = line.trim().split(/\s+/);
    if (name && /Listen|ReqQ|Abort|Reset|RST|Syncookies|Backlog/i.test(name))
      counters.set(name, Number(value));
  }
  return counters;
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

function rssMiB(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Math.round(Number(kb) / 1024);
}

/** Resolves to 'closed' when the socket closes, 'timeout' if still open after `ms`. */
function closedWithin(socket: Socket, ms: number): Promise<'closed' | 'timeout'> {
  if (socket.destroyed) return Promise.resolve('closed');
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
  });
}

describe('ztunnel under connection floods and fd pressure', () => {
  const lab = `tf${randomBytes(4).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'ambit-ztf-'));
  const handles: NetnsHandle[] = [];
  const appSockets = new Set<Socket>();
  let appConnections = 0;
  let app: Server | undefined;
  let state: LabState;
  let mesh: LabMesh | undefined;
  let client: LabPod;
  let server: LabPod;
  let clientNs: NetnsHandle;
  let outsiderNs: NetnsHandle;
  let nodeNs: NetnsHandle;
  let pid: number;
  const pod = (name: string) => state.pods.find((p) => p.name === name)!;
  const open = (path: string) => {
    const h = NetnsHandle.open(path);
    handles.push(h);
    return h;
  };

  /** One meshed connection n1-pod1 -> n1-pod2:8000 carrying `size` random bytes, checked by sha256. */
  async function meshedEcho(size = 64 * 1024): Promise<void> {
    const body = randomBytes(size);
    const s = await connected(connectInNetns(clientNs, { host: server.ip, port: 8000, allowHalfOpen: true }));
    try {
      const echoed = readAll(s);
      s.end(body);
      assert.equal(sha256(await echoed), sha256(body));
    } finally {
      s.destroy();
    }
  }

  before(async () => {
    state = await labUp({ name: lab, nodes: 1, podsPerNode: 3, ...uniqueLabCidrs() });
    mesh = await LabMesh.start(state, {
      dir: join(dir, 'mesh'),
      ztunnelEnv: { AMBIT_HBONE_HANDSHAKE_TIMEOUT: `${HANDSHAKE_TIMEOUT_S}s` },
    });
    client = pod('n1-pod1');
    server = pod('n1-pod2');
    await mesh.enroll(client, 'sa-client');
    await mesh.enroll(server, 'sa-server');
    clientNs = open(client.netnsPath);
    outsiderNs = open(pod('n1-pod3').netnsPath);
    nodeNs = open(state.nodes[0]!.netnsPath);
    pid = mesh.nodes.get('n1')!.child.pid!;
    app = await listenInNetns(open(server.netnsPath), {
      port: 8000,
      backlog: 1024,
      server: { allowHalfOpen: true },
    });
    app.on('connection', (s: Socket) => {
      appConnections++;
      appSockets.add(s);
      s.once('close', () => appSockets.delete(s));
      s.on('error', () => {});
      s.pipe(s);
    });
    await meshedEcho(); // the HBONE tunnel n1-pod1 -> n1-pod2 is pooled from here on
  });

  after(async () => {
    try {
      if (pid) run('prlimit', ['--pid', String(pid), '--nofile=20000:20000']);
    } catch {}
    for (const s of appSockets) s.destroy();
    await new Promise((r) => (app ? app.close(r) : r(undefined)));
    await mesh?.stop();
    for (const h of handles) h.close();
    if (state) await labDown(lab);
    rmSync(dir, { recursive: true, force: true });
  });

  test(`${IDLE} idle and ${SLOWLORIS} slowloris connections to :15008 are closed within the handshake timeout; fds return to baseline; meshed traffic keeps working`, async (t) => {
    const baselineFds = fdCount(pid);
    const baselineRss = rssMiB(pid);
    let peakFds = baselineFds;
    let peakRss = baselineRss;
    const sampler = setInterval(() => {
      peakFds = Math.max(peakFds, fdCount(pid));
      peakRss = Math.max(peakRss, rssMiB(pid));
    }, 200);

    // Meshed traffic the whole time: one 64 KiB echo after another, every one must arrive intact.
    let flooding = true;
    let echoes = 0;
    const echoFailures: string[] = [];
    const traffic = (async () => {
      while (flooding) {
        try {
          await meshedEcho();
          echoes++;
        } catch (err) {
          echoFailures.push((err as Error).message);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    const lifetimes: number[] = [];
    const attackers: Promise<void>[] = [];
    const dial = async (slowloris: boolean) => {
      const opened = Date.now();
      let s: Socket;
      try {
        s = await connected(connectInNetns(outsiderNs, { host: server.ip, port: 15008 }));
      } catch {
        lifetimes.push(Date.now() - opened); // refused at once: closed, nothing held
        return;
      }
      s.on('error', () => {});
      let sent = 0;
      // A bounded dribble: one byte every 500 ms, never the whole ClientHello.
      const dribble = slowloris
        ? setInterval(() => {
            if (s.destroyed || sent >= CLIENT_HELLO_PREFIX.length) return;
            s.write(CLIENT_HELLO_PREFIX.subarray(sent, sent + 1));
            sent++;
          }, 500)
        : undefined;
      const result = await closedWithin(s, (HANDSHAKE_TIMEOUT_S + 60) * 1000);
      clearInterval(dribble);
      lifetimes.push(result === 'closed' ? Date.now() - opened : Number.POSITIVE_INFINITY);
      s.destroy();
    };
    try {
      for (let i = 0; i < IDLE + SLOWLORIS; i += 100) {
        const batch: Promise<void>[] = [];
        for (let j = i; j < Math.min(i + 100, IDLE + SLOWLORIS); j++) {
          const p = dial(j >= IDLE);
          batch.push(p);
          attackers.push(p);
        }
        // Wait for this batch's connects, not its closes.
        await new Promise((r) => setTimeout(r, 100));
      }
      await Promise.all(attackers);
    } finally {
      flooding = false;
      await traffic;
      clearInterval(sampler);
    }
    const longest = Math.max(...lifetimes);
    let settledFds = fdCount(pid);
    try {
      await eventually(
        'the fd count back at its baseline',
        () => {
          settledFds = fdCount(pid);
          return settledFds <= baselineFds + 5;
        },
        30_000,
      );
    } finally {
      t.diagnostic(
        `fds: baseline ${baselineFds}, peak ${peakFds}, after ${settledFds}; RSS MiB: baseline ${baselineRss}, peak ${peakRss}, after ${rssMiB(pid)}; longest attacker lifetime ${longest} ms; meshed echoes ${echoes} ok, ${echoFailures.length} failed`,
      );
    }
    const unclosed = lifetimes.filter((l) => l === Number.POSITIVE_INFINITY).length;
    assert.equal(unclosed, 0, `${unclosed} of ${lifetimes.length} attacker connections were never closed`);
    // Generous: the machine is loaded; the bound that matters is "closed", not "closed quickly".
    assert.ok(longest <= (HANDSHAKE_TIMEOUT_S + 30) * 1000, `an attacker connection lived ${longest} ms`);
    assert.deepEqual(echoFailures, [], 'meshed traffic kept working during the flood');
    assert.ok(echoes > 0, 'meshed traffic ran during the flood');
  });

  test('near the fd limit: new connections are refused; established ones, readiness and admin keep answering; it recovers', async (t) => {
    const baselineFds = fdCount(pid);
    const limit = baselineFds + 400;
    const linesBefore = mesh!.nodes.get('n1')!.lines.length;
    // Only the soft limit: without CAP_SYS_RESOURCE a lowered hard limit could not be raised again.
    run('prlimit', ['--pid', String(pid), `--nofile=${limit}:20000`]);
    const held: Socket[] = [];
    let refused = 0;
    try {
      /** A meshed connection that echoes `hello`; resolves to the socket, or undefined if it was refused. */
      const tryOpen = async (i: number): Promise<Socket | undefined> => {
        let s: Socket;
        try {
          s = await connected(connectInNetns(clientNs, { host: server.ip, port: 8000 }));
        } catch {
          return undefined;
        }
        s.on('error', () => {});
        const hello = `hello ${i}\n`;
        const answer = await new Promise<string>((resolve) => {
          const timer = setTimeout(() => resolve('timeout'), 30_000);
          s.once('data', (d: Buffer) => {
            clearTimeout(timer);
            resolve(d.toString());
          });
          s.once('close', () => {
            clearTimeout(timer);
            resolve('closed');
          });
          s.write(hello);
        });
        if (answer === hello) return s;
        s.destroy();
        return undefined;
      };
      for (let i = 0; i < 400; i += 20) {
        const batch = await Promise.all(Array.from({ length: 20 }, (_, k) => tryOpen(i + k)));
        for (const s of batch) {
          if (s) held.push(s);
          else refused++;
        }
      }
      const atLimit = fdCount(pid);
      t.diagnostic(
        `limit ${limit} (baseline ${baselineFds}): ${held.length} connections established, ${refused} refused, ztunnel holds ${atLimit} fds`,
      );
      assert.ok(refused > 0, 'the fd limit was reached');
      assert.ok(held.length >= 50, `only ${held.length} connections were established`);

      assert.equal(await httpStatusIn(nodeNs, 15021, '/healthz/ready'), 200, 'readiness answers');
      assert.equal(await httpStatusIn(nodeNs, 15000, '/'), 200, 'admin answers');
      const extra = await tryOpen(-1);
      extra?.destroy();
      assert.equal(extra, undefined, 'a new connection is refused');
      let stillEchoing = 0;
      for (const [i, s] of held.entries()) {
        const msg = `again ${i}\n`;
        const got = await new Promise<string>((resolve) => {
          const timer = setTimeout(() => resolve('timeout'), 30_000);
          s.once('data', (d: Buffer) => {
            clearTimeout(timer);
            resolve(d.toString());
          });
          s.write(msg);
        });
        if (got === msg) stillEchoing++;
      }
      assert.equal(stillEchoing, held.length, 'every established connection still carries data');
    } catch (err) {
      const lines = mesh!.nodes
        .get('n1')!
        .lines.slice(linesBefore)
        .filter((l) => /refusing|EMFILE|WARN|ERROR/.test(l));
      t.diagnostic(`ztunnel said:\n${lines.slice(0, 10).join('\n')}\n...\n${lines.slice(-10).join('\n')}`);
      run('prlimit', ['--pid', String(pid), '--nofile=20000:20000']); // the later tests need the usual limit
      throw err;
    } finally {
      for (const s of held) s.destroy();
    }
    try {
      // Recovery: with the held connections gone, new ones work again (the limit is still in force).
      await eventually(
        'a new meshed connection after the held ones closed',
        async () => {
          try {
            await meshedEcho();
            return true;
          } catch {
            return false;
          }
        },
        30_000,
      );
      assert.equal(await httpStatusIn(nodeNs, 15021, '/healthz/ready'), 200);
    } finally {
      // The later tests need the process's usual limit, whatever happened here.
      run('prlimit', ['--pid', String(pid), '--nofile=20000:20000']);
    }
  });

  test('a burst of 1,000 concurrent meshed connections through one pod: every payload arrives and comes back intact', async (t) => {
    const BURST = 1000;
    const outcomes = new Map<string, number>();
    const count = (what: string) => outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
    const linesBefore = mesh!.nodes.get('n1')!.lines.length;
    const kernelBefore = [client, server].map((p) => tcpCounters(p.netns));
    const started = Date.now();
    await Promise.all(
      Array.from({ length: BURST }, async (_, i) => {
        const body = Buffer.concat([Buffer.from(`payload ${i} `), randomBytes(16 * 1024)]);
        try {
          const s = await connected(
            connectInNetns(clientNs, { host: server.ip, port: 8000, allowHalfOpen: true }),
          );
          try {
            const echoed = readAll(s);
            s.end(body);
            count(sha256(await echoed) === sha256(body) ? 'intact' : 'corrupted');
          } finally {
            s.destroy();
          }
        } catch (err) {
          count((err as NodeJS.ErrnoException).code ?? (err as Error).message);
        }
      }),
    );
    const summary = [...outcomes].map(([k, v]) => `${k} ${v}`).join(', ');
    t.diagnostic(`${BURST} concurrent connections in ${Date.now() - started} ms: ${summary}`);
    if (outcomes.get('intact') !== BURST) {
      // What ztunnel said about the failures, by error.
      const errors = new Map<string, number>();
      for (const line of mesh!.nodes.get('n1')!.lines.slice(linesBefore)) {
        const error = /error="([^"]+)"/.exec(line)?.[1];
        if (error) errors.set(error, (errors.get(error) ?? 0) + 1);
      }
      t.diagnostic(`ztunnel errors: ${[...errors].map(([e, n]) => `${n}x ${e}`).join('; ') || 'none'}`);
      for (const [i, p] of [client, server].entries()) {
        const after = tcpCounters(p.netns);
        const changed = [...after].filter(([k, v]) => v !== (kernelBefore[i]!.get(k) ?? 0));
        t.diagnostic(
          `kernel TCP counters in ${p.name}: ${changed.map(([k, v]) => `${k}+${v - (kernelBefore[i]!.get(k) ?? 0)}`).join(' ')}`,
        );
      }
    }
    assert.equal(outcomes.get('intact'), BURST, summary);
  });

  test('rapid reset: a client that opens and resets streams is cut off promptly after GOAWAY, and no app connection is dialled for a reset stream', async (t) => {
    // A raw HTTP/2 client with a valid mesh certificate (its own identity), from the pod outside the mesh.
    const certs = new CertificateManager({
      ca: await LocalCa.open(mesh!.caDir, { trustDomain: 'cluster.local' }),
    });
    const contexts = new HboneTlsContexts(certs);
    const appBefore = appConnections;
    try {
      const { socket } = await connectHbone(contexts, {
        source: parseSpiffeId('spiffe://cluster.local/ns/default/sa/raw'),
        expected: [parseSpiffeId('spiffe://cluster.local/ns/default/sa/sa-server')],
        socket: connectInNetns(outsiderNs, { host: server.ip, port: 15008 }),
      });
      socket.on('error', () => {});
      let goawayAt: number | undefined;
      let inbound = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => {
        inbound = Buffer.concat([inbound, d]);
        while (inbound.length >= 9) {
          const len = inbound.readUIntBE(0, 3);
          if (inbound.length < 9 + len) break;
          if (inbound[3] === FRAME_GOAWAY) goawayAt ??= Date.now();
          inbound = inbound.subarray(9 + len);
        }
      });
      const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
      socket.write(Buffer.concat([H2_PREFACE, frame(FRAME_SETTINGS, 0, 0)]));
      const request = hpackLiterals([
        [':method', 'CONNECT'],
        [':authority', `${server.ip}:8000`],
      ]);
      // Request + RST_STREAM(CANCEL) pairs, 100 per write, for at most 20,000 streams or 30 s.
      const started = Date.now();
      let streamId = 1;
      let sentAfterGoaway = 0;
      while (!socket.destroyed && streamId < 40_000 && Date.now() - started < 30_000) {
        const batch: Buffer[] = [];
        for (let i = 0; i < 100; i++, streamId += 2) {
          batch.push(
            frame(FRAME_HEADERS, END_HEADERS, streamId, request),
            frame(FRAME_RST_STREAM, 0, streamId, CANCEL),
          );
        }
        if (goawayAt !== undefined) sentAfterGoaway += 100;
        if (!socket.write(Buffer.concat(batch)))
          await new Promise((r) => {
            socket.once('drain', r).once('close', r);
            setTimeout(r, 1000); // a server that stops reading must not stall the loop past its bound
          });
        await new Promise((r) => setImmediate(r));
      }
      const closedAt = await Promise.race([
        closed,
        new Promise<number>((r) => setTimeout(() => r(Number.NaN), 60_000)),
      ]);
      // Let dials that were started reach the app before counting.
      await new Promise((r) => setTimeout(r, 1000));
      const dialled = appConnections - appBefore;
      t.diagnostic(
        `streams opened and reset: ${(streamId - 1) / 2}; GOAWAY after ${goawayAt === undefined ? 'never' : `${goawayAt - started} ms`}; TLS closed ${Number.isNaN(closedAt) ? 'never' : `${closedAt - (goawayAt ?? started)} ms after GOAWAY`}; streams sent after GOAWAY ${sentAfterGoaway}; app connections dialled ${dialled}`,
      );
      assert.ok(goawayAt !== undefined, 'the server sent GOAWAY');
      assert.ok(!Number.isNaN(closedAt), 'the server closed the connection');
      // Generous for a loaded machine, far below the keepalive timeout that closed it before.
      assert.ok(closedAt - goawayAt <= 5000, `closed ${closedAt - goawayAt} ms after GOAWAY`);
      assert.ok(dialled <= 20, `${dialled} app connections were dialled for streams already reset`);
    } finally {
      contexts.close();
      certs.close();
    }
    await meshedEcho(); // meshed traffic unaffected
  });
});
