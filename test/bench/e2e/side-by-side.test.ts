/**
 * `npm run bench -- --proxy ambit,istio` with tiny sizes: the harness that puts ambit's and Istio's
 * ztunnel on the same lab pods in turn must give both columns real figures, and each proxy's own
 * metrics must show the benchmark's connections went through it as mutual TLS (HBONE). Without
 * Istio's binary the run goes on with ambit only, saying in one line why Istio's column is skipped.
 * Istio's binary comes from $ISTIO_ZTUNNEL or `istio-ztunnel` on PATH; without it the first test is
 * skipped. The node floor (a bare Node.js TLS relay per node) is measured in the same runs unless
 * --no-floor: its clients reach the servers only through its relays, and the servers check the bytes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ProxySample, Summary } from '../../../bench/report.js';
import { findIstioZtunnel } from '../../../src/lab/cluster/index.js';

const BENCH = fileURLToPath(new URL('../../../bench/run.js', import.meta.url));
const CONNS = 10;
const ROUNDS = 2;
const WARMUP = 20;
const TINY = [
  '--bytes',
  String(4 * 1024 * 1024),
  '--rr',
  '50',
  '--conns',
  String(CONNS),
  '--warmup',
  String(WARMUP),
  '--settle',
  '1',
];

interface Output extends Summary {
  options: { proxies: string[]; rounds: number };
  skipped: Record<string, string>;
  proxySamples: ProxySample[];
}

function bench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BENCH, ...args],
      { timeout: 240_000, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

function parse(stdout: string): Output {
  const lines = stdout.trim().split('\n');
  assert.equal(lines.length, 1, `--json-only prints one JSON line, got:\n${stdout}`);
  return JSON.parse(lines[0]!) as Output;
}

function assertFigures(out: Output, paths: string[]): void {
  for (const path of paths) {
    for (const placement of ['same-node', 'cross-node']) {
      const row = out.rows.find((r) => r.path === path && r.placement === placement);
      assert.ok(row, `a ${path} ${placement} row`);
      assert.ok(row.bulkMBps > 0 && row.bulkXDirect! > 0, `${path} ${placement} bulk`);
      for (const p of [row.rrUs, row.connUs]) assert.ok(p.p50 > 0 && p.p90 >= p.p50 && p.p99 >= p.p90);
      if (path === 'direct') {
        assert.equal(row.cpuSecondsPerGiB, undefined, 'no ztunnel to charge on the direct path');
        continue;
      }
      // /proc counts in 10 ms ticks, so a small run may read 0; user space is part of the whole.
      assert.ok(row.cpuSecondsPerGiB! >= row.cpuUserSecondsPerGiB! && row.cpuUserSecondsPerGiB! >= 0);
      assert.ok(row.cpuMicrosPerConn! >= row.cpuUserMicrosPerConn! && row.cpuUserMicrosPerConn! >= 0);
    }
  }
}

/** Per placement: warm-up RR + warm-up connections + bulk + RR + connections; each counted by both ends. */
const CONNECTIONS_PER_TURN = 2 * (1 + WARMUP + 1 + 1 + CONNS) * 2;

function assertThroughProxy(out: Output, proxy: string): void {
  const turns = out.proxySamples.filter((s) => s.proxy === proxy);
  assert.equal(turns.length, out.options.rounds, `${proxy} served every round`);
  for (const t of turns) {
    assert.ok(
      t.connectionsOpened!.mtls >= CONNECTIONS_PER_TURN,
      `${proxy}'s ztunnels counted ${t.connectionsOpened!.mtls} mTLS connections in round ${t.round}, want ≥ ${CONNECTIONS_PER_TURN}`,
    );
    for (const node of ['n1', 'n2']) {
      assert.ok(t.rssIdle[node]! > 0 && t.rssAfterLoad[node]! > 0 && t.rssSettled[node]! > 0);
      // The anonymous part is measured on its own and is a part: neither missing nor the whole.
      assert.ok(t.rssAnonIdle[node]! > 0 && t.rssAnonIdle[node]! < t.rssIdle[node]!);
    }
  }
  const memory = out.memory.filter((m) => m.proxy === proxy);
  assert.deepEqual(
    memory.map((m) => m.node),
    ['n1', 'n2'],
  );
}

/** The floor ran every round, and its memory was read on both nodes like a ztunnel's. */
function assertFloor(out: Output): void {
  const turns = out.proxySamples.filter((s) => s.proxy === 'node-floor');
  assert.equal(turns.length, out.options.rounds, 'the node floor ran every round');
  for (const t of turns) {
    assert.equal(t.connectionsOpened, undefined, 'the floor has no metrics to count');
    for (const node of ['n1', 'n2'])
      assert.ok(t.rssIdle[node]! > 0 && t.rssAnonIdle[node]! < t.rssIdle[node]!);
  }
  assert.deepEqual(
    out.memory.filter((m) => m.proxy === 'node-floor').map((m) => m.node),
    ['n1', 'n2'],
  );
}

function assertComparison(out: Output, of: string, over: string): void {
  const c = out.comparisons.find((k) => k.of === of && k.over === over);
  assert.ok(c, `a ${of} / ${over} comparison`);
  assert.equal(c.placements.length, 2);
  for (const p of c.placements) assert.ok(p.bulkMBps > 0 && p.rrUs.p50 > 0 && p.connUs.p50 > 0);
  assert.deepEqual(
    c.memory.map((m) => m.node),
    ['n1', 'n2'],
  );
}

describe('npm run bench -- --proxy ambit,istio', () => {
  const istio = findIstioZtunnel(undefined);

  test("both columns have figures, and each proxy's metrics saw the traffic", {
    skip: 'missing' in istio ? `Istio's ztunnel: ${istio.missing}` : false,
  }, async () => {
    const r = await bench(['--proxy', 'ambit,istio', '--rounds', String(ROUNDS), ...TINY, '--json-only']);
    assert.equal(r.code, 0, r.stderr);
    const out = parse(r.stdout);
    assert.deepEqual(out.options.proxies, ['ambit', 'istio']);
    assert.deepEqual(out.skipped, {});
    assertFigures(out, ['direct', 'node-floor', 'ambit', 'istio']);
    assertThroughProxy(out, 'ambit');
    assertThroughProxy(out, 'istio');
    assertFloor(out);
    // Alternating: each round's first proxy is the other one than the round before.
    const firsts = [0, 1].map(
      (round) => out.proxySamples.find((s) => s.round === round && s.proxy !== 'node-floor')!.proxy,
    );
    assert.deepEqual(firsts, ['ambit', 'istio']);
    assert.deepEqual(
      out.comparisons.map((c) => `${c.of}/${c.over}`),
      ['ambit/istio', 'ambit/node-floor', 'node-floor/istio'],
    );
    for (const [of, over] of [
      ['ambit', 'istio'],
      ['ambit', 'node-floor'],
      ['node-floor', 'istio'],
    ] as const) {
      assertComparison(out, of, over);
    }
  });

  test("without Istio's binary: one line says its column is skipped and why, ambit's figures follow (--no-floor: no floor either)", async () => {
    const missing = '/nonexistent/istio-ztunnel';
    const r = await bench([
      '--proxy',
      'ambit,istio',
      '--istio-ztunnel',
      missing,
      '--rounds',
      '1',
      ...TINY,
      '--no-floor',
      '--json-only',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const skipLines = r.stderr.split('\n').filter((l) => /skipping Istio's ztunnel column/.test(l));
    assert.equal(skipLines.length, 1, r.stderr);
    assert.match(skipLines[0]!, new RegExp(`--istio-ztunnel ${missing} is not an executable file`));
    const out = parse(r.stdout);
    assert.deepEqual(out.options.proxies, ['ambit']);
    assert.match(out.skipped['istio'] ?? '', /not an executable file/);
    assertFigures(out, ['direct', 'ambit']);
    assertThroughProxy(out, 'ambit');
    assert.deepEqual(
      [...new Set(out.rows.map((row) => row.path))],
      ['direct', 'ambit'],
      'neither Istio nor the floor (--no-floor) was measured',
    );
    assert.deepEqual(out.comparisons, []);
  });
});
