/**
 * `npm run bench`: throughput, request/response latency and connection rate between lab pods, for
 * direct TCP and through the node proxies (the pods enrolled in ambient, HBONE between the nodes'
 * ztunnels), same node and cross node, plus what the ztunnels cost: CPU per GiB moved and memory.
 * With `--proxy ambit,istio`, ambit's and Istio's ztunnel serve the same lab cluster and pods in
 * turn (alternating their order each round), so their figures are comparable and each ambit/Istio
 * ratio is printed. Medians over the rounds. Needs root.
 *
 * Options: --bytes N (bulk size, default 1 GiB), --rr N (round trips, default 5000),
 *          --conns N (connections, default 500), --rounds N (default 3),
 *          --settle S (seconds the ztunnels are left quiet before their idle memory is read, after they
 *          took the pods over and again after the load; default 20),
 *          --proxy ambit[,istio] (default ambit), --istio-ztunnel PATH (else $ISTIO_ZTUNNEL, else
 *          istio-ztunnel on PATH), --no-floor, --json-only.
 *
 * Unless --no-floor, each round also measures the node floor (node-floor.ts): a bare Node.js relay per
 * node, TLS between the nodes, nothing else. It is the least a Node node proxy can cost on this machine,
 * so ambit/floor says how much of ambit's cost is its own and floor/Istio how much is Node's.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import {
  adminClient,
  clusterDown,
  clusterPod,
  clusterUp,
  findIstioZtunnel,
  podAdd,
} from '../src/lab/cluster/index.js';
import { loadLab } from '../src/lab/index.js';
import { setLogLevel } from '../src/runtime/log.js';
import { NetnsHandle } from '../src/sys/index.js';
import { type NodeFloor, startNodeFloor } from './floor.js';
import { bulkThroughput, connectionRate, requestResponse, type Target } from './load.js';
import { cpuTimes, rssBytes, startInNetns, stopProcess } from './proc.js';
import { type BenchPod, NodeProxies, PROXIES, type ProxyName } from './proxies.js';
import {
  PLACEMENTS,
  type Placement,
  type ProxySample,
  type Relay,
  type Sample,
  summarize,
  tables,
} from './report.js';

const here = dirname(fileURLToPath(import.meta.url));
const SERVER_PORT = 5000;
const NAMESPACE = 'bench';
const GiB = 1024 ** 3;
/** The least time a freshly started proxy serving the pods is left alone before its idle memory is read. */
const SETTLE_MS = 1000;

interface Options {
  bytes: number;
  rr: number;
  conns: number;
  rounds: number;
  warmup: number;
  settle: number;
}

/**
 * One path and placement: warm-up, then bulk, request/response and new connections. The warm-up
 * (`--warmup` round trips and as many connections, default 1000 each) brings every path to its steady
 * state — pools dialled and, for ambit's Node ztunnel, the connection code through V8's optimizing
 * compiler, which 20 connections did not: measured on a lab, the per-connection p50 fell from ~2.1 ms
 * over a fresh ztunnel's first 300 connections to ~1.3 ms after 1500. A node proxy runs for days;
 * its first seconds are not what its connections see. `proxyPids` (both nodes' ztunnels) are charged
 * the CPU they spend during the bulk (per GiB) and during the new connections (per connection), with
 * the user-space part apart: the kernel's share of moving bytes is much the same for any proxy.
 */
async function measure(target: Target, o: Options, proxyPids: number[] | undefined, connTarget = target) {
  await requestResponse(target, 1024, o.warmup);
  await connectionRate(connTarget, 1024, o.warmup);
  const cpu = () => (proxyPids ? cpuTimes(proxyPids) : { user: 0, system: 0 });
  const beforeBulk = cpu();
  const bulkMBps = await bulkThroughput(target, o.bytes);
  const afterBulk = cpu();
  const rrUs = await requestResponse(target, 1024, o.rr);
  const beforeConns = cpu();
  const connUs = await connectionRate(connTarget, 1024, o.conns);
  const afterConns = cpu();
  if (!proxyPids) return { bulkMBps, rrUs, connUs };
  const gib = o.bytes / GiB;
  const bulkUser = afterBulk.user - beforeBulk.user;
  const bulkSystem = afterBulk.system - beforeBulk.system;
  const connUser = afterConns.user - beforeConns.user;
  const connSystem = afterConns.system - beforeConns.system;
  return {
    bulkMBps,
    rrUs,
    connUs,
    cpuSecondsPerGiB: (bulkUser + bulkSystem) / gib,
    cpuUserSecondsPerGiB: bulkUser / gib,
    cpuMicrosPerConn: ((connUser + connSystem) * 1e6) / o.conns,
    cpuUserMicrosPerConn: (connUser * 1e6) / o.conns,
  };
}

/**
 * One turn of a node proxy (a ztunnel on every node, or the node floor's relays), started for it: its
 * idle memory read `--settle` seconds after it took the pods over (not straight after its start-up: a
 * ztunnel's certificates, xDS and listeners are a burst too, and ambit's gives that memory back after 10 s
 * quiet, runtime/idle-memory.ts), then every placement measured with its processes charged, then its
 * memory right after the load and `--settle` seconds later (a proxy runs for days between bursts: what
 * it keeps once the load is over counts as much as its peak). `targets` gives each placement's target
 * for the bytes and for the new connections.
 */
async function measureTurn(
  proxy: Relay,
  processes: ReadonlyMap<string, number>,
  targets: (placement: Placement) => { bytes: Target; conns: Target },
  o: Options,
  round: number,
  samples: Sample[],
): Promise<Omit<ProxySample, 'connectionsOpened'>> {
  await sleep(Math.max(SETTLE_MS, o.settle * 1000));
  const pids = [...processes.values()];
  const rss = (field?: 'RssAnon') =>
    Object.fromEntries([...processes].map(([node, pid]) => [node, rssBytes(pid, field)]));
  const rssIdle = rss();
  const rssAnonIdle = rss('RssAnon');
  for (const placement of PLACEMENTS) {
    const t = targets(placement);
    samples.push({ round, path: proxy, placement, ...(await measure(t.bytes, o, pids, t.conns)) });
  }
  const rssAfterLoad = rss();
  await sleep(o.settle * 1000);
  return { round, proxy, rssIdle, rssAnonIdle, rssAfterLoad, rssSettled: rss() };
}

/** Puts the bench namespace in or out of ambient; the agent then enrolls or releases its pods. */
async function setAmbient(lab: string, on: boolean): Promise<void> {
  await adminClient(lab).patchNamespace(
    { name: NAMESPACE, body: { metadata: { labels: { 'istio.io/dataplane-mode': on ? 'ambient' : null } } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

function parseOptions() {
  const { values } = parseArgs({
    options: {
      bytes: { type: 'string', default: String(GiB) },
      rr: { type: 'string', default: '5000' },
      conns: { type: 'string', default: '500' },
      rounds: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1000' },
      settle: { type: 'string', default: '20' },
      proxy: { type: 'string', default: 'ambit' },
      'istio-ztunnel': { type: 'string' },
      'no-floor': { type: 'boolean', default: false },
      'json-only': { type: 'boolean', default: false },
    },
  });
  const opts: Options = {
    bytes: Number(values.bytes),
    rr: Number(values.rr),
    conns: Number(values.conns),
    rounds: Number(values.rounds),
    warmup: Number(values.warmup),
    settle: Number(values.settle),
  };
  for (const [name, v] of Object.entries(opts)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} wants a whole number ≥ 1`);
  }
  const proxies = values.proxy.split(',').map((p) => p.trim());
  for (const p of proxies) {
    if (!(PROXIES as readonly string[]).includes(p))
      throw new Error(`--proxy: unknown proxy '${p}' (one or more of ${PROXIES.join(', ')})`);
  }
  return {
    opts,
    proxies: [...new Set(proxies)] as ProxyName[],
    istioFlag: values['istio-ztunnel'],
    jsonOnly: values['json-only'],
    floor: !values['no-floor'],
  };
}

async function main(): Promise<void> {
  const { opts, proxies: wanted, istioFlag, jsonOnly, floor: withFloor } = parseOptions();
  if (process.getuid?.() !== 0) throw new Error('the benchmark needs root (network namespaces)');
  setLogLevel('warn');

  let proxies = wanted;
  let istioBinary: string | undefined;
  const skipped: Record<string, string> = {};
  if (wanted.includes('istio')) {
    const found = findIstioZtunnel(istioFlag);
    if ('binary' in found) istioBinary = found.binary;
    else {
      skipped['istio'] = found.missing;
      proxies = wanted.filter((p) => p !== 'istio');
      process.stderr.write(`bench: skipping Istio's ztunnel column: ${found.missing}\n`);
    }
  }

  const lab = `bench${randomBytes(2).toString('hex')}`;
  const b = randomBytes(1)[0]! % 64;
  const servers: ChildProcess[] = [];
  const handles: NetnsHandle[] = [];
  const floors: NodeFloor[] = [];
  const cleanUp = async () => {
    await Promise.all(servers.map(stopProcess));
    await Promise.all(floors.map((f) => f.stop()));
    for (const h of handles) h.close();
    await clusterDown(lab).catch((err) =>
      process.stderr.write(
        `bench: cleaning up lab ${lab}: ${err instanceof Error ? err.message : String(err)}\n`,
      ),
    );
  };
  // Interrupted (Ctrl-C, a timeout's SIGTERM): take the lab down rather than leave it running.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`bench: ${signal}, taking lab ${lab} down\n`);
      // The measurement in flight fails as the lab goes; its errors no longer matter.
      process.on('uncaughtException', () => {});
      process.on('unhandledRejection', () => {});
      void cleanUp().finally(() => process.exit(130));
    });
  }
  try {
    await clusterUp({
      name: lab,
      nodes: 2,
      nodeCidr: `10.${200 + (b % 50)}.0.0/24`,
      podCidr: `10.${128 + b}.0.0/16`,
    });
    const pods: BenchPod[] = [];
    for (const [name, node] of [
      ['client', 'n1'],
      ['server-local', 'n1'],
      ['server-remote', 'n2'],
    ] as const) {
      await podAdd(lab, { namespace: NAMESPACE, name }, { node });
      const sandbox = clusterPod(lab, { namespace: NAMESPACE, name });
      if (!sandbox) throw new Error(`pod ${NAMESPACE}/${name} has no sandbox`);
      pods.push({
        name,
        node: sandbox.node,
        ip: sandbox.ip,
        netns: sandbox.netns,
        netnsPath: sandbox.netnsPath,
      });
    }
    const [client, local, remote] = pods as [BenchPod, BenchPod, BenchPod];
    for (const pod of [local, remote]) {
      const script = join(here, 'echo-server.js');
      servers.push(
        await startInNetns(pod.netns, script, [String(SERVER_PORT)], `echo server in ${pod.name}`),
      );
    }
    const clientNetns = NetnsHandle.open(client.netnsPath);
    handles.push(clientNetns);
    const targets: Record<Placement, Target> = {
      'same-node': { netns: clientNetns, host: local.ip, port: SERVER_PORT },
      'cross-node': { netns: clientNetns, host: remote.ip, port: SERVER_PORT },
    };
    const nodes = loadLab(lab).nodes;
    const nodeProxies = new NodeProxies(lab, nodes, istioBinary);
    const startFloor = () =>
      startNodeFloor(
        lab,
        nodes,
        { node: client.node, netns: clientNetns },
        {
          'same-node': { node: local.node, ip: local.ip, port: SERVER_PORT },
          'cross-node': { node: remote.node, ip: remote.ip, port: SERVER_PORT },
        },
      );

    const samples: Sample[] = [];
    const proxySamples: ProxySample[] = [];
    for (let round = 0; round < opts.rounds; round++) {
      await setAmbient(lab, false);
      await nodeProxies.waitNotServing(pods);
      for (const placement of PLACEMENTS) {
        samples.push({
          round,
          path: 'direct',
          placement,
          ...(await measure(targets[placement], opts, undefined)),
        });
      }
      if (withFloor) {
        // While the pods are out of the mesh (its clients dial its relays, not the servers), on relays
        // started for this round as the ztunnels are for their turn, so "idle" is a fresh process's.
        const floor = await startFloor();
        try {
          const at = (p: Placement) => ({ bytes: floor.bytes[p], conns: floor.conns[p] });
          proxySamples.push(await measureTurn('node-floor', floor.pids, at, opts, round, samples));
        } finally {
          await floor.stop();
        }
      }
      // Alternate which proxy goes first, so neither always runs on a warmer (or more tired) machine.
      const order = round % 2 === 0 ? proxies : [...proxies].reverse();
      for (const [i, proxy] of order.entries()) {
        await nodeProxies.use(proxy);
        if (i === 0) await setAmbient(lab, true);
        await nodeProxies.waitServing(pods);
        const at = (p: Placement) => ({ bytes: targets[p], conns: targets[p] });
        const turn = await measureTurn(proxy, nodeProxies.pids, at, opts, round, samples);
        const connectionsOpened = await nodeProxies.connectionsOpened();
        if (connectionsOpened.mtls === 0) {
          throw new Error(
            `${proxy}'s ztunnels counted no mutual-TLS connection: the traffic did not go through them`,
          );
        }
        proxySamples.push({ ...turn, connectionsOpened });
      }
    }

    const summary = summarize(samples, proxySamples);
    if (!jsonOnly) process.stdout.write(tables(summary, opts.rounds, opts.settle));
    process.stdout.write(
      `${JSON.stringify({ options: { ...opts, proxies, floor: withFloor, ...(istioBinary ? { istioZtunnel: istioBinary } : {}) }, skipped, ...summary, samples, proxySamples })}\n`,
    );
  } finally {
    await cleanUp();
  }
}

main().catch((err) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
