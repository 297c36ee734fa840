/**
 * The node proxies under test on the benchmark's lab cluster: which ztunnel each node runs (ambit's
 * or Istio's binary in its place), swapping them, and knowing when the pods are really served by
 * the new one (their listeners belong to it, it knows the pods speak HBONE) before measuring.
 */
import {
  connectionsOpened,
  type NodeProxy,
  type ServedPod,
  startComponent,
  stopComponent,
  waitNotServing,
  waitServing,
} from '../src/lab/cluster/index.js';
import type { LabNode } from '../src/lab/index.js';

/** ambit's ztunnel, Istio's ztunnel. */
export const PROXIES = ['ambit', 'istio'] as const;
export type ProxyName = (typeof PROXIES)[number];

/** A pod of the benchmark: where it runs and how to reach it. */
export type BenchPod = ServedPod;

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

  /** Replaces every node's ztunnel with a fresh `proxy` process (on the same ZDS socket, CA, xDS, token). */
  async use(proxy: ProxyName): Promise<void> {
    let spec: NodeProxy = { kind: 'ambit' };
    const env: Record<string, string> = { RUST_LOG: this.logLevel };
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
    await waitServing(this.lab, this.nodes, this.pids, pods);
  }

  /** Waits until no pod has a ztunnel listener (out of the mesh, for the direct path). */
  async waitNotServing(pods: readonly BenchPod[]): Promise<void> {
    await waitNotServing(pods);
  }

  /**
   * Connections the current ztunnels counted, over both nodes (`istio_tcp_connections_opened_total`,
   * every reporter), and of them the mutual-TLS (HBONE) ones: proof the traffic went through them.
   */
  async connectionsOpened(): Promise<{ all: number; mtls: number }> {
    return connectionsOpened(this.nodes);
  }
}
