/**
 * The primary CNI network of a lab node, as a cluster's CNI would install it: the lab's primary
 * plugin (bridge by default; ptp, ipvlan or macvlan per lab, see primary-cni.ts) with `host-local`
 * IPAM, no masquerade, then `loopback`. The lab's kubelet chains ambit-cni after these.
 */
import { isIPv6 } from 'node:net';
import { hostAddress, parseCidr } from './cidr.js';
import type { NetworkConfigList, PluginConf } from './cni-runtime/index.js';
import { nodePodCidrs } from './ip-family.js';
import { NODE_UPLINK, POD_BRIDGE, stateDir } from './names.js';
import { DEFAULT_PRIMARY_CNI, onUplink, type PrimaryCni } from './primary-cni.js';
import type { LabNode, LabState } from './state.js';

export const LAB_NETWORK_NAME = 'ambit-lab';

export function ipamDir(lab: string, node: string): string {
  return `${stateDir(lab)}/ipam/${node}`;
}

/** A lab state as older versions wrote it has no primaryCni: those labs are bridge labs. */
export function primaryOf(state: Pick<LabState, 'primaryCni'>): PrimaryCni {
  return state.primaryCni ?? DEFAULT_PRIMARY_CNI;
}

/**
 * The node's addresses out of host-local. Routed plugins get the node's pod CIDR as the subnet. The
 * uplink plugins get the whole cluster pod CIDR as subnet (one L2 segment for every pod of the lab)
 * and hand out only the node's block, past the gateway the node's shim holds.
 */
function ipam(state: Pick<LabState, 'name' | 'podCidr' | 'primaryCni'>, node: LabNode) {
  const dataDir = ipamDir(state.name, node.name);
  if (onUplink(primaryOf(state))) {
    // IPv4 only (lab.ts refuses other families with these plugins).
    const block = parseCidr(node.podCidr, 'node pod CIDR');
    // The block's last address may be the cluster range's broadcast address: stop one short of it.
    const range = {
      subnet: state.podCidr,
      rangeStart: hostAddress(block, 2),
      rangeEnd: hostAddress(block, 2 ** (32 - block.prefix) - 2),
      gateway: node.podGateway,
    };
    return { type: 'host-local', ranges: [[range]], routes: [{ dst: '0.0.0.0/0' }], dataDir };
  }
  // One range and one default route per family, primary first: a dual-stack pod gets an address
  // from each, and its default route in each via that family's gateway.
  const nets = nodePodCidrs(node);
  return {
    type: 'host-local',
    ranges: nets.map((n) => [{ subnet: n.podCidr, gateway: n.podGateway }]),
    routes: nets.map((n) => ({ dst: isIPv6(n.podGateway) ? '::/0' : '0.0.0.0/0' })),
    dataDir,
  };
}

function primaryPlugin(state: Pick<LabState, 'name' | 'podCidr' | 'primaryCni'>, node: LabNode): PluginConf {
  const primary = primaryOf(state);
  const config = { ipam: ipam(state, node) };
  switch (primary) {
    case 'bridge':
      return { type: 'bridge', bridge: POD_BRIDGE, isGateway: true, ipMasq: false, ...config };
    case 'ptp':
      return { type: 'ptp', ipMasq: false, ...config };
    case 'ipvlan':
      return { type: 'ipvlan', master: NODE_UPLINK, mode: 'l2', ...config };
    case 'macvlan':
      return { type: 'macvlan', master: NODE_UPLINK, mode: 'bridge', ...config };
  }
}

export function nodeConflist(
  state: Pick<LabState, 'name' | 'podCidr' | 'primaryCni'>,
  node: LabNode,
): NetworkConfigList {
  return {
    cniVersion: '1.0.0',
    name: LAB_NETWORK_NAME,
    plugins: [primaryPlugin(state, node), { type: 'loopback' }],
  };
}
