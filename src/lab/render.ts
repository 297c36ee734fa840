/** Human-readable lab topology for `lab status` and the demo. */
import { formatPodRef } from './names.js';
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

/** `present` tells which namespaces exist right now, so a half-removed lab shows what is missing. */
export function renderTopology(state: LabState, present: ReadonlySet<string>): string {
  const mark = (netns: string) => (present.has(netns) ? netns : `${netns} (MISSING)`);
  const lines = [
    `Lab ${state.name}: ${state.nodes.length} node(s), ${state.pods.length} pod(s)`,
    `  fabric bridge ${state.fabric.bridge} in netns ${mark(state.fabric.netns)}; nodes on ${state.nodeCidr}, pods in ${state.podCidr}${familyNote(state)}`,
    '',
    'Nodes',
    ...table([
      ['NAME', 'NODE IP', 'POD CIDR', 'GATEWAY', 'PODS', 'NETNS'],
      ...state.nodes.map((n) => [
        n.name,
        ...perFamily(n),
        String(state.pods.filter((p) => p.node === n.name).length),
        mark(n.netns),
      ]),
    ]),
    '',
    'Pods',
  ];
  if (state.pods.length === 0) lines.push('  (none)');
  else {
    lines.push(
      ...table([
        ['POD', 'NODE', 'IP', 'NETNS'],
        ...state.pods.map((p) => [formatPodRef(p), p.node, (p.ips ?? [p.ip]).join(','), mark(p.netns)]),
      ]),
    );
  }
  return lines.join('\n');
}
