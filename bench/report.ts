/**
 * The benchmark's figures: each round's samples reduced to medians, the ratios asked of them (× direct,
 * ambit/Istio, ambit/node floor, node floor/Istio), and the tables and JSON printed from them.
 */
import type { Percentiles } from './load.js';
import type { ProxyName } from './proxies.js';

/** A node proxy measured: a ztunnel, or the node floor (a bare Node.js TLS relay, node-floor.ts). */
export type Relay = ProxyName | 'node-floor';
export type Path = 'direct' | Relay;
export type Placement = 'same-node' | 'cross-node';
export const PLACEMENTS: readonly Placement[] = ['same-node', 'cross-node'];

/** One path and placement measured in one round. */
export interface Sample {
  round: number;
  path: Path;
  placement: Placement;
  bulkMBps: number;
  rrUs: Percentiles;
  connUs: Percentiles;
  /** CPU seconds of both nodes' ztunnels (or floor relays) during the bulk transfer, per GiB moved. */
  cpuSecondsPerGiB?: number;
  /** Of it, user space (utime): what the proxy's own code costs, without the kernel's TCP work. */
  cpuUserSecondsPerGiB?: number;
  /** CPU microseconds of both nodes' ztunnels per new connection, and of it user space. */
  cpuMicrosPerConn?: number;
  cpuUserMicrosPerConn?: number;
}

/** One proxy's processes in one round: memory per node, and what its metrics counted. */
export interface ProxySample {
  round: number;
  proxy: Relay;
  /** Resident bytes of each node's ztunnel, serving the pods but before any load. */
  rssIdle: Record<string, number>;
  /** The anonymous part of rssIdle (RssAnon): without the executable's shared file pages. */
  rssAnonIdle: Record<string, number>;
  rssAfterLoad: Record<string, number>;
  /** Resident bytes `--settle` seconds after the load ended: what a ztunnel keeps between bursts. */
  rssSettled: Record<string, number>;
  /**
   * istio_tcp_connections_opened_total over both nodes, and of it the mutual-TLS (HBONE) ones. The
   * floor has no metrics: its clients dial its relays, so nothing reaches the servers but through them.
   */
  connectionsOpened?: { all: number; mtls: number };
}

export interface Row {
  path: Path;
  placement: Placement;
  bulkMBps: number;
  bulkXDirect?: number;
  rrUs: Percentiles;
  connUs: Percentiles;
  cpuSecondsPerGiB?: number;
  cpuUserSecondsPerGiB?: number;
  cpuMicrosPerConn?: number;
  cpuUserMicrosPerConn?: number;
}

/** The CPU figures of a sample or row, by name. */
const CPU_FIGURES = [
  'cpuSecondsPerGiB',
  'cpuUserSecondsPerGiB',
  'cpuMicrosPerConn',
  'cpuUserMicrosPerConn',
] as const;

export interface Memory {
  proxy: Relay;
  node: string;
  rssIdleMiB: number;
  rssAnonIdleMiB: number;
  rssAfterLoadMiB: number;
  rssSettledMiB: number;
}

/** One proxy's figure divided by another's, for each figure of a placement. */
export interface SideBySide {
  placement: Placement;
  bulkMBps: number;
  rrUs: Percentiles;
  connUs: Percentiles;
  cpuSecondsPerGiB: number | null;
  cpuUserSecondsPerGiB: number | null;
  cpuMicrosPerConn: number | null;
}

export interface MemorySideBySide {
  node: string;
  rssIdle: number;
  rssAnonIdle: number;
  rssAfterLoad: number;
  rssSettled: number;
}

export interface Summary {
  rows: Row[];
  memory: Memory[];
  /** Today's mesh/direct figures, per proxy. */
  ratios: {
    path: Relay;
    placement: Placement;
    bulkRatio: number;
    rrP50OverheadUs: number;
    connP50OverheadUs: number;
  }[];
  /** ambit over Istio, ambit over the node floor, the node floor over Istio: those measured. */
  comparisons: Comparison[];
}

export interface Comparison {
  of: Relay;
  over: Relay;
  placements: SideBySide[];
  memory: MemorySideBySide[];
}

const COMPARISONS: readonly (readonly [Relay, Relay])[] = [
  ['ambit', 'istio'],
  ['ambit', 'node-floor'],
  ['node-floor', 'istio'],
];

function ratio(a: number | undefined, i: number | undefined): number | null {
  return a !== undefined && i ? a / i : null;
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function medianPercentiles(ps: readonly Percentiles[]): Percentiles {
  return {
    p50: median(ps.map((p) => p.p50)),
    p90: median(ps.map((p) => p.p90)),
    p99: median(ps.map((p) => p.p99)),
  };
}

const MiB = 1024 * 1024;

export function summarize(samples: readonly Sample[], proxySamples: readonly ProxySample[]): Summary {
  const paths = [...new Set(samples.map((s) => s.path))];
  const rows: Row[] = [];
  for (const path of paths) {
    for (const placement of PLACEMENTS) {
      const of = samples.filter((s) => s.path === path && s.placement === placement);
      if (of.length === 0) continue;
      const r: Row = {
        path,
        placement,
        bulkMBps: median(of.map((s) => s.bulkMBps)),
        rrUs: medianPercentiles(of.map((s) => s.rrUs)),
        connUs: medianPercentiles(of.map((s) => s.connUs)),
      };
      for (const figure of CPU_FIGURES) {
        const values = of.flatMap((s) => (s[figure] === undefined ? [] : [s[figure]]));
        if (values.length > 0) r[figure] = median(values);
      }
      rows.push(r);
    }
  }
  const row = (path: Path, placement: Placement) =>
    rows.find((r) => r.path === path && r.placement === placement);
  for (const r of rows) {
    const direct = row('direct', r.placement);
    if (direct) r.bulkXDirect = r.bulkMBps / direct.bulkMBps;
  }

  const memory: Memory[] = [];
  for (const proxy of [...new Set(proxySamples.map((p) => p.proxy))]) {
    const of = proxySamples.filter((p) => p.proxy === proxy);
    for (const node of Object.keys(of[0]!.rssIdle).sort()) {
      memory.push({
        proxy,
        node,
        rssIdleMiB: median(of.map((p) => p.rssIdle[node] ?? 0)) / MiB,
        rssAnonIdleMiB: median(of.map((p) => p.rssAnonIdle?.[node] ?? 0)) / MiB,
        rssAfterLoadMiB: median(of.map((p) => p.rssAfterLoad[node] ?? 0)) / MiB,
        rssSettledMiB: median(of.map((p) => p.rssSettled?.[node] ?? 0)) / MiB,
      });
    }
  }

  const ratios: Summary['ratios'] = [];
  for (const r of rows) {
    const direct = row('direct', r.placement);
    if (r.path === 'direct' || !direct) continue;
    ratios.push({
      path: r.path,
      placement: r.placement,
      bulkRatio: r.bulkMBps / direct.bulkMBps,
      rrP50OverheadUs: r.rrUs.p50 - direct.rrUs.p50,
      connP50OverheadUs: r.connUs.p50 - direct.connUs.p50,
    });
  }

  const comparisons: Comparison[] = [];
  for (const [of, over] of COMPARISONS) {
    if (paths.includes(of) && paths.includes(over)) comparisons.push(compare(of, over, row, memory));
  }
  return { rows, memory, ratios, comparisons };
}

const overPercentiles = (a: Percentiles, b: Percentiles): Percentiles => ({
  p50: a.p50 / b.p50,
  p90: a.p90 / b.p90,
  p99: a.p99 / b.p99,
});

function compare(
  of: Relay,
  over: Relay,
  row: (path: Path, placement: Placement) => Row | undefined,
  memory: readonly Memory[],
): Comparison {
  const placements: SideBySide[] = [];
  for (const placement of PLACEMENTS) {
    const a = row(of, placement);
    const b = row(over, placement);
    if (!a || !b) continue;
    placements.push({
      placement,
      bulkMBps: a.bulkMBps / b.bulkMBps,
      rrUs: overPercentiles(a.rrUs, b.rrUs),
      connUs: overPercentiles(a.connUs, b.connUs),
      cpuSecondsPerGiB: ratio(a.cpuSecondsPerGiB, b.cpuSecondsPerGiB),
      cpuUserSecondsPerGiB: ratio(a.cpuUserSecondsPerGiB, b.cpuUserSecondsPerGiB),
      cpuMicrosPerConn: ratio(a.cpuMicrosPerConn, b.cpuMicrosPerConn),
    });
  }
  const mem: MemorySideBySide[] = [];
  for (const a of memory.filter((m) => m.proxy === of)) {
    const b = memory.find((m) => m.proxy === over && m.node === a.node);
    if (!b) continue;
    mem.push({
      node: a.node,
      rssIdle: a.rssIdleMiB / b.rssIdleMiB,
      rssAnonIdle: a.rssAnonIdleMiB / b.rssAnonIdleMiB,
      rssAfterLoad: a.rssAfterLoadMiB / b.rssAfterLoadMiB,
      rssSettled: a.rssSettledMiB / b.rssSettledMiB,
    });
  }
  return { of, over, placements, memory: mem };
}

const f = (n: number | null | undefined, digits = 0) =>
  n === null || n === undefined ? '–' : n.toFixed(digits);
const pct = (p: Percentiles, digits = 0) => `${f(p.p50, digits)}/${f(p.p90, digits)}/${f(p.p99, digits)}`;
const cpu = (all: number | undefined, user: number | undefined, digits: number) =>
  all === undefined ? '–' : `${f(all, digits)} (${f(user, digits)})`;
const x = (n: number | null | undefined) => (n === null || n === undefined ? '–' : `${n.toFixed(2)}x`);

export function tables(s: Summary, rounds: number, settleSeconds: number): string {
  const lines = [
    `medians of ${rounds} round${rounds === 1 ? '' : 's'}`,
    '',
    '| path | placement | bulk MB/s | × direct | 1 KiB RR p50/p90/p99 us | new conn p50/p90/p99 us | proxy CPU s/GiB (user) | proxy CPU us/conn (user) |',
    '|---|---|---|---|---|---|---|---|',
    ...s.rows.map(
      (r) =>
        `| ${r.path} | ${r.placement} | ${f(r.bulkMBps)} | ${x(r.bulkXDirect)} | ${pct(r.rrUs)} | ${pct(r.connUs)} | ${cpu(r.cpuSecondsPerGiB, r.cpuUserSecondsPerGiB, 2)} | ${cpu(r.cpuMicrosPerConn, r.cpuUserMicrosPerConn, 0)} |`,
    ),
    '',
    '| path | placement | mesh/direct bulk | RR p50 overhead us | new conn p50 overhead us |',
    '|---|---|---|---|---|',
    ...s.ratios.map(
      (r) =>
        `| ${r.path} | ${r.placement} | ${x(r.bulkRatio)} | ${f(r.rrP50OverheadUs)} | ${f(r.connP50OverheadUs)} |`,
    ),
    '',
    `| proxy | node | RSS idle MiB | of it anonymous MiB | RSS after load MiB | RSS ${settleSeconds} s later MiB |`,
    '|---|---|---|---|---|---|',
    ...s.memory.map(
      (m) =>
        `| ${m.proxy} | ${m.node} | ${f(m.rssIdleMiB, 1)} | ${f(m.rssAnonIdleMiB, 1)} | ${f(m.rssAfterLoadMiB, 1)} | ${f(m.rssSettledMiB, 1)} |`,
    ),
    '',
  ];
  for (const c of s.comparisons) {
    lines.push(
      `${c.of} / ${c.over} (below 1 is less: better for latency, CPU and memory, worse for bulk)`,
      '',
      '| placement | bulk MB/s | RR p50/p90/p99 | new conn p50/p90/p99 | CPU s/GiB | of it user | CPU us/conn |',
      '|---|---|---|---|---|---|---|',
      ...c.placements.map(
        (p) =>
          `| ${p.placement} | ${x(p.bulkMBps)} | ${pct(p.rrUs, 2)} | ${pct(p.connUs, 2)} | ${x(p.cpuSecondsPerGiB)} | ${x(p.cpuUserSecondsPerGiB)} | ${x(p.cpuMicrosPerConn)} |`,
      ),
      '',
      `| node | RSS idle | anonymous idle | RSS after load | RSS ${settleSeconds} s later |`,
      '|---|---|---|---|---|',
      ...c.memory.map(
        (m) =>
          `| ${m.node} | ${x(m.rssIdle)} | ${x(m.rssAnonIdle)} | ${x(m.rssAfterLoad)} | ${x(m.rssSettled)} |`,
      ),
      '',
    );
  }
  return `${lines.join('\n')}\n`;
}
