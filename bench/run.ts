/**
 * `npm run bench`: throughput, request/response latency and connection rate between lab pods, for
 * direct TCP and for the mesh path (the seed's rules + ztunnel on both ends), same node and cross
 * node. Prints a table and JSON with each figure and the mesh/direct ratio. Needs root.
 *
 * Options: --bytes N (bulk size, default 1 GiB), --rr N (round trips, default 5000),
 *          --conns N (connections, default 500), --json-only.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createPod, labDown, labUp } from '../src/lab/index.js';
import type { LabPod } from '../src/lab/state.js';
import { setLogLevel } from '../src/runtime/log.js';
import { NetnsHandle } from '../src/sys/index.js';
import { bulkThroughput, connectionRate, type Percentiles, requestResponse, type Target } from './load.js';
import { startMesh } from './mesh.js';

const here = dirname(fileURLToPath(import.meta.url));
const SERVER_PORT = 5000;

interface Row {
  path: 'direct' | 'mesh';
  placement: 'same-node' | 'cross-node';
  bulkMBps: number;
  rrUs: Percentiles;
  connUs: Percentiles;
}

function startServer(pod: LabPod): Promise<ChildProcess> {
  const child = spawn(
    'ip',
    ['netns', 'exec', pod.netns, process.execPath, join(here, 'echo-server.js'), String(SERVER_PORT)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.stdout?.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`echo server exited with ${code}`)));
  });
}

async function measure(target: Target, o: { bytes: number; rr: number; conns: number }) {
  // Warm up paths, pools and JIT before measuring.
  await requestResponse(target, 1024, 200);
  await connectionRate(target, 1024, 20);
  const bulkMBps = await bulkThroughput(target, o.bytes);
  const rrUs = await requestResponse(target, 1024, o.rr);
  const connUs = await connectionRate(target, 1024, o.conns);
  return { bulkMBps, rrUs, connUs };
}

function fmt(n: number, digits = 0): string {
  return n.toFixed(digits);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      bytes: { type: 'string', default: String(1024 ** 3) },
      rr: { type: 'string', default: '5000' },
      conns: { type: 'string', default: '500' },
      'json-only': { type: 'boolean', default: false },
      paths: { type: 'string', default: 'direct,mesh' },
    },
  });
  const opts = { bytes: Number(values.bytes), rr: Number(values.rr), conns: Number(values.conns) };
  const paths = values.paths.split(',');
  if (process.getuid?.() !== 0) throw new Error('the benchmark needs root (network namespaces)');
  setLogLevel('warn');

  const lab = `bench${randomBytes(2).toString('hex')}`;
  const b = randomBytes(1)[0]! % 64;
  const children: ChildProcess[] = [];
  const handles: NetnsHandle[] = [];
  let stopMesh: (() => Promise<void>) | undefined;
  try {
    await labUp({
      name: lab,
      nodes: 2,
      nodeCidr: `10.${200 + (b % 50)}.0.0/24`,
      podCidr: `10.${128 + b}.0.0/16`,
    });
    const client = await createPod(lab, 'n1', { namespace: 'bench', name: 'client' });
    const local = await createPod(lab, 'n1', { namespace: 'bench', name: 'server-local' });
    const remote = await createPod(lab, 'n2', { namespace: 'bench', name: 'server-remote' });
    children.push(await startServer(local), await startServer(remote));
    const clientNetns = NetnsHandle.open(client.netnsPath);
    handles.push(clientNetns);
    const targets = {
      'same-node': { netns: clientNetns, host: local.ip, port: SERVER_PORT },
      'cross-node': { netns: clientNetns, host: remote.ip, port: SERVER_PORT },
    } as const;

    const rows: Row[] = [];
    for (const path of ['direct', 'mesh'] as const) {
      if (!paths.includes(path)) continue;
      if (path === 'mesh') stopMesh = await startMesh(lab, [client, local, remote]);
      for (const placement of ['same-node', 'cross-node'] as const) {
        rows.push({ path, placement, ...(await measure(targets[placement], opts)) });
      }
    }

    const ratios = (['same-node', 'cross-node'] as const).flatMap((placement) => {
      const d = rows.find((r) => r.path === 'direct' && r.placement === placement);
      const m = rows.find((r) => r.path === 'mesh' && r.placement === placement);
      if (!d || !m) return [];
      return [
        {
          placement,
          bulkRatio: m.bulkMBps / d.bulkMBps,
          rrP50OverheadUs: m.rrUs.p50 - d.rrUs.p50,
          connP50OverheadUs: m.connUs.p50 - d.connUs.p50,
        },
      ];
    });
    if (!values['json-only']) {
      const lines = [
        '| path | placement | bulk MB/s | 1 KiB RR p50/p90/p99 us | new conn p50/p90/p99 us |',
        '|---|---|---|---|---|',
        ...rows.map(
          (r) =>
            `| ${r.path} | ${r.placement} | ${fmt(r.bulkMBps)} | ${fmt(r.rrUs.p50)}/${fmt(r.rrUs.p90)}/${fmt(r.rrUs.p99)} | ${fmt(r.connUs.p50)}/${fmt(r.connUs.p90)}/${fmt(r.connUs.p99)} |`,
        ),
        '',
        '| placement | mesh/direct bulk | RR p50 overhead us | new conn p50 overhead us |',
        '|---|---|---|---|',
        ...ratios.map(
          (r) =>
            `| ${r.placement} | ${fmt(r.bulkRatio, 2)}x | ${fmt(r.rrP50OverheadUs)} | ${fmt(r.connP50OverheadUs)} |`,
        ),
        '',
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    process.stdout.write(`${JSON.stringify({ options: opts, rows, ratios })}\n`);
  } finally {
    await stopMesh?.();
    for (const c of children) c.kill('SIGTERM');
    for (const h of handles) h.close();
    await labDown(lab);
  }
}

main().catch((err) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
