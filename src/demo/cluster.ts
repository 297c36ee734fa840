/**
 * The seed's starting point on the lab: a two-node cluster, namespace ambient-demo with the sleep
 * client on n1 and httpbin on n2, then the namespace labelled for ambient so the running pods get
 * enrolled, as the seed's "namespace tagged for ambient mode".
 */
import { isIPv6 } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import {
  adminClient,
  ClusterLayout,
  clusterDown,
  clusterPod,
  clusterStatus,
  clusterUp,
  podAdd,
} from '../lab/cluster/index.js';
import { ensureNamespace, readPod } from '../lab/cluster/kube.js';
import { sandboxIps } from '../lab/cluster/sandbox.js';
import { type IpFamily, loadLab, type PodRef, type PrimaryCni } from '../lab/index.js';
import { ambitCommand } from '../runtime/invocation.js';
import { demoError } from './errors.js';

export const DEMO_NAMESPACE = 'ambient-demo';
export const DATAPLANE_MODE = 'istio.io/dataplane-mode';
export const REDIRECTION_ANNOTATION = 'ambient.istio.io/redirection';
const ENROLL_TIMEOUT_MS = 30_000;

export interface DemoPod {
  ref: PodRef;
  node: string;
  /** The address the walkthrough uses: IPv6 in a lab that has it, else IPv4. */
  ip: string;
  uid: string;
  /** The pod's network namespace name, for `ip netns exec`. */
  netns: string;
}

export interface DemoCluster {
  lab: string;
  layout: ClusterLayout;
  sleep: DemoPod;
  httpbin: DemoPod;
}

/** Stops and removes whatever an earlier run left; true when there was something. */
export async function removeLeftover(lab: string): Promise<boolean> {
  const report = await clusterDown(lab);
  return report.removedNetns.length > 0 || report.stopped.length > 0;
}

/** The lab's network: its IP family and the primary CNI plugin (the lab's defaults when absent). */
export interface DemoNetwork {
  ipFamily?: IpFamily;
  primaryCni?: PrimaryCni;
}

export async function bringUpCluster(lab: string, network: DemoNetwork = {}): Promise<ClusterLayout> {
  await clusterUp({ name: lab, nodes: 2, ...network });
  return new ClusterLayout(lab);
}

function demoPod(lab: string, ref: PodRef): DemoPod {
  const record = clusterPod(lab, ref);
  if (!record) throw demoError('DEMO_NO_POD', `pod ${ref.namespace}/${ref.name} has no sandbox`);
  // In a lab with IPv6 (IPv6-only or dual stack) the walkthrough shows IPv6, the new family.
  const ip = sandboxIps(record).find((a) => isIPv6(a)) ?? record.ip;
  return { ref, node: record.node, ip, uid: record.uid, netns: record.netns };
}

/** Namespace ambient-demo (not yet labelled), sleep on n1 and httpbin on n2, both Running. */
export async function addPods(lab: string): Promise<{ sleep: DemoPod; httpbin: DemoPod }> {
  await ensureNamespace(adminClient(lab), DEMO_NAMESPACE);
  const sleepRef = { namespace: DEMO_NAMESPACE, name: 'sleep' };
  const httpbinRef = { namespace: DEMO_NAMESPACE, name: 'httpbin' };
  await Promise.all([
    podAdd(lab, sleepRef, { node: 'n1', image: 'sleep' }),
    podAdd(lab, httpbinRef, { node: 'n2', image: 'httpbin' }),
  ]);
  return { sleep: demoPod(lab, sleepRef), httpbin: demoPod(lab, httpbinRef) };
}

export async function labelAmbient(lab: string): Promise<void> {
  await adminClient(lab).patchNamespace(
    { name: DEMO_NAMESPACE, body: { metadata: { labels: { [DATAPLANE_MODE]: 'ambient' } } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

/** Waits until every pod carries the annotation the agent writes once it is enrolled. */
export async function waitEnrolled(lab: string, pods: readonly DemoPod[]): Promise<void> {
  const core = adminClient(lab);
  const deadline = Date.now() + ENROLL_TIMEOUT_MS;
  for (;;) {
    const annotations = await Promise.all(
      pods.map(async (p) => (await readPod(core, p.ref.namespace, p.ref.name))?.metadata?.annotations),
    );
    const pending = pods.filter((_, i) => annotations[i]?.[REDIRECTION_ANNOTATION] !== 'enabled');
    if (pending.length === 0) return;
    if (Date.now() > deadline) {
      throw demoError(
        'DEMO_NOT_ENROLLED',
        `${pending.map((p) => `${p.ref.namespace}/${p.ref.name}`).join(', ')} not annotated ${REDIRECTION_ANNOTATION}: enabled after ${ENROLL_TIMEOUT_MS / 1000} s (see ${ambitCommand()} lab logs agent --node ${pending[0]!.node})`,
      );
    }
    await sleep(100);
  }
}

/** The pid of the ztunnel process of a node, which must own the pod's listeners. */
export function ztunnelPid(lab: string, node: string): number | undefined {
  return clusterStatus(loadLab(lab)).find((c) => c.component === 'ztunnel' && c.node === node)?.pid;
}
