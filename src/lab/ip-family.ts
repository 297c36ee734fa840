/**
 * The lab's IP families, named as kind names them (`networking.ipFamily`): `ipv4` (the default),
 * `ipv6` or `dual` (IPv4 first, then IPv6, as a dual-stack Kubernetes cluster lists podCIDRs and
 * podIPs). The IPv6 ranges are unique local addresses (fd00::/8): never routed off the machine.
 */
import { type Cidr, formatCidr, hostAddress, overlaps, parseCidr, subnet } from './cidr.js';
import { labError } from './errors.js';
import type { IpFamily, LabNode, NodeNetwork } from './state.js';

export type { IpFamily };
export const IP_FAMILIES: readonly IpFamily[] = ['ipv4', 'ipv6', 'dual'];

/** Documented IPv6 defaults: nodes on fd00:10:240::/64 (n1 = ::1), pods in fd00:10:244::/56, a /64 per node. */
export const DEFAULT_NODE_CIDR6 = 'fd00:10:240::/64';
export const DEFAULT_POD_CIDR6 = 'fd00:10:244::/56';
/** Each node's share of the IPv6 pod CIDR: a /64, the usual size of an IPv6 subnet. */
export const NODE_MASK6 = 64;

/** Refuses a family this lab does not know (a caller other than the CLI, or a state from elsewhere). */
export function checkIpFamily(family: string): IpFamily {
  if ((IP_FAMILIES as readonly string[]).includes(family)) return family as IpFamily;
  throw labError('LAB_BAD_IP_FAMILY', `IP family must be one of ${IP_FAMILIES.join(', ')} (got '${family}')`);
}

export function hasIpv4(family: IpFamily): boolean {
  return family !== 'ipv6';
}

export function hasIpv6(family: IpFamily): boolean {
  return family !== 'ipv4';
}

/** One family's plan: its ranges and each node's network in it (index 0 = n1). */
export interface FamilyPlan {
  nodeCidr: string;
  podCidr: string;
  nodeMask: number;
  networks: NodeNetwork[];
}

/**
 * The plan once a family's ranges are parsed: node nK = host K on the node CIDR and pod block K of
 * `nodeMask` (block 0 stays unused so node nK owns block K, which reads well: n1 = 10.244.1.0/24).
 * `label` names the family in the error ('' for IPv4, 'IPv6 ').
 */
export function familyPlan(
  nodeCidr: Cidr,
  podCidr: Cidr,
  nodeMask: number,
  count: number,
  label = '',
): FamilyPlan {
  if (overlaps(nodeCidr, podCidr)) {
    throw labError(
      'LAB_BAD_CIDR',
      `${label}node CIDR ${formatCidr(nodeCidr)} overlaps ${label}pod CIDR ${formatCidr(podCidr)}; pick disjoint ranges`,
    );
  }
  const networks: NodeNetwork[] = [];
  for (let i = 1; i <= count; i++) {
    const pods = subnet(podCidr, nodeMask, i);
    networks.push({
      ip: hostAddress(nodeCidr, i),
      nodePrefix: nodeCidr.prefix,
      podCidr: formatCidr(pods),
      podGateway: hostAddress(pods, 1),
    });
  }
  return { nodeCidr: formatCidr(nodeCidr), podCidr: formatCidr(podCidr), nodeMask, networks };
}

/** The IPv6 plan: a /64 of the pod CIDR per node. */
export function planIpv6(
  count: number,
  nodeCidrText = DEFAULT_NODE_CIDR6,
  podCidrText = DEFAULT_POD_CIDR6,
): FamilyPlan {
  const nodeCidr = parseCidr(nodeCidrText, 'IPv6 node CIDR', 6, 64, 120);
  const podCidr = parseCidr(podCidrText, 'IPv6 pod CIDR', 6, 32, NODE_MASK6 - 1);
  return familyPlan(nodeCidr, podCidr, NODE_MASK6, count, 'IPv6 ');
}

/**
 * The node's networks, primary family first: `networks` when the lab planned more than IPv4, else
 * the single network of the node's own fields (an IPv4 lab, or one made before IPv6 existed).
 */
export function nodeNetworks(node: LabNode, nodeCidr: string): NodeNetwork[] {
  if (node.networks && node.networks.length > 0) return node.networks;
  return [
    {
      ip: node.ip,
      nodePrefix: Number(nodeCidr.split('/')[1]),
      podCidr: node.podCidr,
      podGateway: node.podGateway,
    },
  ];
}

/** The node's addresses, primary first (Node status.addresses, a pod's hostIPs). */
export function nodeIps(node: LabNode): string[] {
  return node.networks?.map((n) => n.ip) ?? [node.ip];
}

/** The node's pod CIDRs, primary first (Node spec.podCIDRs, host-local's ranges). */
export function nodePodCidrs(node: LabNode): { podCidr: string; podGateway: string }[] {
  return node.networks ?? [{ podCidr: node.podCidr, podGateway: node.podGateway }];
}
