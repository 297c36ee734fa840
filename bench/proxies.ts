/**
 * The node proxies under test on the benchmark's lab cluster: which ztunnel each node runs (ambit's
 * or Istio's binary in its place), swapping them, and knowing when the pods are really served by
 * the new one (their listeners belong to it, it knows the pods speak HBONE) before measuring.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import {
  ClusterLayout,
  logTail,
  type NodeProxy,
  startComponent,
  stopComponent,
} from '../src/lab/cluster/index.js';
import { httpGetIn } from '../src/lab/http-in-netns.js';
import type { LabNode } from '../src/lab/index.js';
import { NetnsHandle } from '../src/sys/index.js';

const run = promisify(execFile);
const WAIT_MS = 60_000;

/** ambit (its default HBONE transport, the framer), ambit-h2 (ztunnel on node:http2), Istio's ztunnel. */
export const PROXIES = ['ambit', 'ambit-h2', 'istio'] as const;
export type ProxyName = (typeof PROXIES)[number];

/** A pod of the benchmark: where it runs and how to reach it. */
export interface BenchPod {
  name: string;
  node: string;
  ip: string;
  /** Its netns by name (`ip netns exec`) and by path. */
  netns: string;
  netnsPath: string;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Istio's ztunnel binary: `--istio-ztunnel PATH`, else $ISTIO_ZTUNNEL, else `istio-ztunnel` on PATH.
 * Returns the path, or why there is none.
 */
export function findIstioZtunnel(flag: string | undefined): { binary: string } | { missing: string } {
  const given = flag ?? process.env['ISTIO_ZTUNNEL'];
  const from = flag !== undefined ? '--istio-ztunnel' : 'ISTIO_ZTUNNEL';
  if (given) {
    return executable(given) ? { binary: given } : { missing: `${from} ${given} is not an executable file` };
  }
  for (const dir of (process.env['PATH'] ?? '').split(delimiter).filter(Boolean)) {
    if (executable(join(dir, 'istio-ztunnel'))) return { binary: join(dir, 'istio-ztunnel') };
  }
  return { missing: 'no --istio-ztunnel PATH, no ISTIO_ZTUNNEL and no istio-ztunnel on PATH' };
}

/** GET a page of a node proxy (admin 15000, metrics 15020) from inside its node's netns. */
async function proxyPage(node: LabNode, port: number, path: string): Promise<string | undefined> {
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

/** The pids owning the pod's listening sockets on each of `ports` (absent: nobody listens there). */
async function listenerOwners(pod: BenchPod, ports: readonly number[]): Promise<Map<number, Set<string>>> {
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

/** ztunnel's in-pod listeners: outbound, inbound plaintext, inbound HBONE. */
const POD_PORTS = [15001, 15006, 15008] as const;

export class NodeProxies {
  /** The ztunnel process of each node, by node name. */
  readonly pids = new Map<string, number>();
  current: ProxyName | undefined;

  constructor(
    readonly lab: string,
    readonly nodes: readonly LabNode[],
    readonly istioBinary: string | undefined,
    /** ztunnel's RUST_LOG for both proxies, the same for both so neither pays for more logging. */
    readonly logLevel = 'warn',
  ) {}

  /** The last lines of a node's ztunnel log (both proxies write to the lab's ztunnel-<node>.log). */
  #logOf(node: string): () => string {
    const file = new ClusterLayout(this.lab).logFile({ component: 'ztunnel', node });
    return () => `; last lines of ${file}:\n${logTail(file)}`;
  }

  /** Replaces every node's ztunnel with a fresh `proxy` process (on the same ZDS socket, CA, xDS, token). */
  async use(proxy: ProxyName): Promise<void> {
    let spec: NodeProxy = { kind: 'ambit' };
    const env: Record<string, string> = { RUST_LOG: this.logLevel };
    // Set either way, so a transport chosen in the caller's environment does not leak into a column.
    if (proxy !== 'istio') env['AMBIT_HBONE_TRANSPORT'] = proxy === 'ambit-h2' ? 'h2' : 'framer';
    if (proxy === 'istio') {
      if (!this.istioBinary) throw new Error("Istio's ztunnel binary was not found");
      spec = { kind: 'istio', binary: this.istioBinary };
    }
    await Promise.all(
      this.nodes.map(async (node) => {
        const id = { component: 'ztunnel', node: node.name } as const;
        await stopComponent(this.lab, id);
        this.pids.delete(node.name);
        const pid = await startComponent(this.lab, id, { proxy: spec, env });
        this.pids.set(node.name, pid);
      }),
    );
    this.current = proxy;
  }

  /**
   * Waits until every pod is served by its node's current ztunnel: the pod's listeners belong to that
   * process (the agent re-sent the pod to it), and every node's ztunnel knows every pod as HBONE.
   */
  async waitServing(pods: readonly BenchPod[]): Promise<void> {
    for (const pod of pods) {
      const pid = String(this.pids.get(pod.node));
      await until(
        `the listeners of pod ${pod.name} belong to ${this.current} ztunnel pid ${pid}`,
        async () => {
          const owners = await listenerOwners(pod, POD_PORTS);
          return POD_PORTS.every((p) => [...(owners.get(p) ?? [])].join() === pid);
        },
        this.#logOf(pod.node),
      );
    }
    for (const node of this.nodes) {
      await until(
        `${this.current} ztunnel on ${node.name} knows the pods as HBONE workloads`,
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
        this.#logOf(node.name),
      );
    }
  }

  /** Waits until no pod has a ztunnel listener (out of the mesh, for the direct path). */
  async waitNotServing(pods: readonly BenchPod[]): Promise<void> {
    for (const pod of pods) {
      await until(`pod ${pod.name} has no ztunnel listeners`, async () => {
        return (await listenerOwners(pod, POD_PORTS)).size === 0;
      });
    }
  }

  /**
   * Connections the current ztunnels counted, over both nodes (`istio_tcp_connections_opened_total`,
   * every reporter), and of them the mutual-TLS (HBONE) ones: proof the traffic went through them.
   */
  async connectionsOpened(): Promise<{ all: number; mtls: number }> {
    let all = 0;
    let mtls = 0;
    for (const node of this.nodes) {
      const text = (await proxyPage(node, 15020, '/metrics')) ?? '';
      for (const line of text.split('\n')) {
        if (!line.startsWith('istio_tcp_connections_opened_total')) continue;
        const value = Number(line.slice(line.lastIndexOf(' ') + 1));
        all += value;
        if (line.includes('connection_security_policy="mutual_tls"')) mtls += value;
      }
    }
    return { all, mtls };
  }
}
