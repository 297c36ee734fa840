/** Human-readable lab topology for `lab status` and the demo. */
import { primaryOf } from './conflist.js';
import { formatPodRef, NODE_SHIM, type PodRef } from './names.js';
import { onUplink } from './primary-cni.js';
import type { LabNode, LabState } from './state.js';

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
  return rows.map((r) => `  ${r.map((cell, col) => cell.padEnd(widths[col]!)).join('  ')}`.trimEnd());
}

/** Node IP, pod CIDR and gateway, each family's comma-separated, primary first. */
function perFamily(node: LabNode): string[] {
  const nets = node.networks ?? [node];
  return [nets.map((n) => n.ip), nets.map((n) => n.podCidr), nets.map((n) => n.podGateway)].map((v) =>
    v.join(','),
  );
}

/** The lab's families when not the default (a dual-stack lab's IPv6 ranges show in the node table). */
function familyNote(state: LabState): string {
  return state.ipFamily && state.ipFamily !== 'ipv4' ? ` (IP family ${state.ipFamily})` : '';
}

/** A pod of a cluster lab: its API object's place and phase (the lab state holds none of them). */
export interface ClusterPodRow extends PodRef {
  node: string;
  ip: string;
  phase: string;
  hostNetwork: boolean;
  netns: string | undefined;
}

/**
 * `present` tells which namespaces exist right now, so a half-removed lab shows what is missing.
 * `clusterPods`: a cluster lab's pods, from its API server; without it, the pods the lab made itself.
 */
export function renderTopology(
  state: LabState,
  present: ReadonlySet<string>,
  clusterPods?: readonly ClusterPodRow[],
): string {
  const mark = (netns: string) => (present.has(netns) ? netns : `${netns} (MISSING)`);
  const pods: readonly { node: string }[] = clusterPods ?? state.pods;
  const lines = [
    `Lab ${state.name}: ${state.nodes.length} node(s), ${pods.length} pod(s)`,
    `  fabric bridge ${state.fabric.bridge} in netns ${mark(state.fabric.netns)}; nodes on ${state.nodeCidr}, pods in ${state.podCidr}${familyNote(state)}`,
    `  primary CNI ${primaryOf(state)}${onUplink(primaryOf(state)) ? ` (pods on each node's uplink; the node reaches them through ${NODE_SHIM})` : ''}`,
    '',
    'Nodes',
    ...table([
      ['NAME', 'NODE IP', 'POD CIDR', 'GATEWAY', 'PODS', 'NETNS'],
      ...state.nodes.map((n) => [
        n.name,
        ...perFamily(n),
        String(pods.filter((p) => p.node === n.name).length),
        mark(n.netns),
      ]),
    ]),
    '',
    'Pods',
  ];
  if (pods.length === 0) lines.push('  (none)');
  else if (clusterPods) {
    const netns = (p: ClusterPodRow) =>
      p.hostNetwork ? '(host network)' : p.netns === undefined ? '(no sandbox)' : mark(p.netns);
    lines.push(
      ...table([
        ['POD', 'NODE', 'IP', 'STATUS', 'NETNS'],
        ...clusterPods.map((p) => [formatPodRef(p), p.node || '-', p.ip || '-', p.phase, netns(p)]),
      ]),
    );
  } else {
    lines.push(
      ...table([
        ['POD', 'NODE', 'IP', 'NETNS'],
        ...state.pods.map((p) => [formatPodRef(p), p.node, (p.ips ?? [p.ip]).join(','), mark(p.netns)]),
      ]),
    );
  }
  return lines.join('\n');
}
