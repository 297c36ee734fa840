/**
 * Whether a lab pod is really served by its node's current ztunnel (ambit's or Istio's binary in
 * its place): the pod's in-pod listeners belong to that process (the agent sent the pod to it) and
 * the node proxies know the pod as an HBONE workload; and what the node proxies counted (Istio's
 * `istio_tcp_connections_opened_total`), to show traffic went through them as mutual TLS.
 */
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { NetnsHandle } from '../../sys/index.js';
import { httpGetIn } from '../http-in-netns.js';
import type { LabNode } from '../state.js';
import { ClusterLayout } from './layout.js';
import { logTail } from './supervisor.js';

const run = promisify(execFile);
const WAIT_MS = 60_000;

/** A cluster pod as these checks need it: where it runs and how to reach it. */
export interface ServedPod {
  name: string;
  node: string;
  ip: string;
  /** Its netns by name (`ip netns exec`) and by path. */
  netns: string;
  netnsPath: string;
}

/** ztunnel's in-pod listeners: outbound, inbound plaintext, inbound HBONE. */
const POD_PORTS = [15001, 15006, 15008] as const;

/** GET a page of a node proxy (admin 15000, metrics 15020) from inside its node's netns. */
export async function proxyPage(node: LabNode, port: number, path: string): Promise<string | undefined> {
  const netns = NetnsHandle.open(node.netnsPath);
  try {
    const r = await httpGetIn(netns, port, path);
    return r?.status === 200 ? r.body : undefined;
  } finally {
    netns.close();
  }
}

/** Polls `check`; on timeout the error names what was awaited and ends with `context()` (a log tail). */
async function until(what: string, check: () => Promise<boolean>, context = () => ''): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}${context()}`);
    await sleep(100);
  }
}

/** The last lines of a node's ztunnel log (ambit's and Istio's both write the lab's ztunnel-<node>.log). */
function ztunnelLog(lab: string, node: string): () => string {
  const file = new ClusterLayout(lab).logFile({ component: 'ztunnel', node });
  return () => `; last lines of ${file}:\n${logTail(file)}`;
}

/** The pids owning the pod's listening sockets on each of `ports` (absent: nobody listens there). */
async function listenerOwners(pod: ServedPod, ports: readonly number[]): Promise<Map<number, Set<string>>> {
  const { stdout } = await run('ip', ['netns', 'exec', pod.netns, 'ss', '-ntlpH']);
  const owners = new Map<number, Set<string>>();
  for (const line of stdout.split('\n')) {
    const local = line.trim().split(/\s+/)[3] ?? '';
    const port = Number(local.slice(local.lastIndexOf(':') + 1));
    if (!ports.includes(port)) continue;
    const pids = owners.get(port) ?? new Set<string>();
    for (const m of line.matchAll(/pid=(\d+),/g)) pids.add(m[1]!);
    owners.set(port, pids);
  }
  return owners;
}

/**
 * Waits until every pod is served by its node's ztunnel, `pids` by node name: the pod's listeners
 * belong to that process, and every node's ztunnel knows every pod as HBONE.
 */
export async function waitServing(
  lab: string,
  nodes: readonly LabNode[],
  pids: ReadonlyMap<string, number>,
  pods: readonly ServedPod[],
): Promise<void> {
  for (const pod of pods) {
    const pid = String(pids.get(pod.node));
    await until(
      `the listeners of pod ${pod.name} belong to ztunnel pid ${pid}`,
      async () => {
        const owners = await listenerOwners(pod, POD_PORTS);
        return POD_PORTS.every((p) => [...(owners.get(p) ?? [])].join() === pid);
      },
      ztunnelLog(lab, pod.node),
    );
  }
  for (const node of nodes) {
    await until(
      `the ztunnel on ${node.name} knows the pods as HBONE workloads`,
      async () => {
        const dump = await proxyPage(node, 15000, '/config_dump');
        if (!dump) return false;
        const workloads = (
          JSON.parse(dump) as { workloads?: { workloadIps?: string[]; protocol?: string }[] }
        ).workloads;
        return pods.every((pod) =>
          (workloads ?? []).some((w) => w.protocol === 'HBONE' && (w.workloadIps ?? []).includes(pod.ip)),
        );
      },
      ztunnelLog(lab, node.name),
    );
  }
}

/** Waits until no pod has a ztunnel listener (out of the mesh). */
export async function waitNotServing(pods: readonly ServedPod[]): Promise<void> {
  for (const pod of pods) {
    await until(`pod ${pod.name} has no ztunnel listeners`, async () => {
      return (await listenerOwners(pod, POD_PORTS)).size === 0;
    });
  }
}

/** One `istio_tcp_connections_opened_total` series: its labels and value. */
export interface OpenedSeries {
  labels: Record<string, string>;
  value: number;
}

/** The node proxy's `istio_tcp_connections_opened_total` series, from its metrics page (15020). */
export async function connectionsOpenedSeries(node: LabNode): Promise<OpenedSeries[]> {
  const text = (await proxyPage(node, 15020, '/metrics')) ?? '';
  const series: OpenedSeries[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('istio_tcp_connections_opened_total')) continue;
    const labels: Record<string, string> = {};
    for (const m of line.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!;
    series.push({ labels, value: Number(line.slice(line.lastIndexOf(' ') + 1)) });
  }
  return series;
}

/**
 * Connections the node proxies counted, over `nodes` (every reporter), and of them the mutual-TLS
 * (HBONE) ones: proof the traffic went through them.
 */
export async function connectionsOpened(nodes: readonly LabNode[]): Promise<{ all: number; mtls: number }> {
  let all = 0;
  let mtls = 0;
  for (const node of nodes) {
    for (const s of await connectionsOpenedSeries(node)) {
      all += s.value;
      if (s.labels['connection_security_policy'] === 'mutual_tls') mtls += s.value;
    }
  }
  return { all, mtls };
}
