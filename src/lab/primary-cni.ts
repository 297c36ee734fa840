/**
 * The primary CNI plugin of a lab: one of the reference plugins that can carry pod traffic here,
 * chosen per lab (`ambit lab up --primary-cni`). In-pod redirection must not care which one it is:
 * ambit-cni only chains after it and the agent works inside the pod's netns.
 *
 * How each one is wired, as a cluster using it would be:
 * - bridge: a bridge in the node, the pods' gateway; pod CIDR per node, nodes route to each other's.
 * - ptp: a veth per pod, routed by the node (host side holds the gateway, a /32 route per pod);
 *   pod CIDR per node routes between nodes, as with bridge.
 * - ipvlan (l2), macvlan (bridge): pods sit on the node's uplink segment; all pods of the lab share
 *   the cluster pod CIDR as one on-link subnet, so pod to pod across nodes is plain L2 on the fabric.
 *   Such a sub-interface can never talk to its own master, so the node (kubelet probes, its own
 *   traffic to local pods) could not reach its pods. As real deployments do, the node gets one more
 *   sub-interface of the same kind on the uplink, `ambit-shim`, holding the pods' gateway address
 *   with a route to the node's pod CIDR: node <-> pod goes through it, sub-interface to sub-interface.
 */
import { labError } from './errors.js';

export const PRIMARY_CNIS = ['bridge', 'ptp', 'ipvlan', 'macvlan'] as const;
export type PrimaryCni = (typeof PRIMARY_CNIS)[number];
export const DEFAULT_PRIMARY_CNI: PrimaryCni = 'bridge';

export function isPrimaryCni(text: string): text is PrimaryCni {
  return (PRIMARY_CNIS as readonly string[]).includes(text);
}

export function parsePrimaryCni(text: string): PrimaryCni {
  if (isPrimaryCni(text)) return text;
  throw labError('LAB_BAD_PRIMARY_CNI', `unknown primary CNI '${text}' (one of: ${PRIMARY_CNIS.join(', ')})`);
}

/** Plugins whose pods hang off the node's uplink and need the node-side sub-interface. */
export function onUplink(primary: PrimaryCni): primary is 'ipvlan' | 'macvlan' {
  return primary === 'ipvlan' || primary === 'macvlan';
}

/** The reference plugins a lab with this primary runs from the plugin dirs. */
export function primaryPlugins(primary: PrimaryCni): string[] {
  return [primary, 'host-local', 'loopback'];
}
