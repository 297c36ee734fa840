/**
 * The primary CNI network of a lab node, as a cluster's CNI would install it: the reference
 * `bridge` plugin (a bridge inside the node netns, pods' gateway, no masquerade) with `host-local`
 * IPAM over the node's pod CIDR, then `loopback`. Later issues chain ambit's plugin after these.
 */
import { isIPv6 } from 'node:net';
import type { NetworkConfigList } from './cni-runtime/index.js';
import { nodePodCidrs } from './ip-family.js';
import { POD_BRIDGE, stateDir } from './names.js';
import type { LabNode } from './state.js';

export const LAB_NETWORK_NAME = 'ambit-lab';

export function ipamDir(lab: string, node: string): string {
  return `${stateDir(lab)}/ipam/${node}`;
}

/** One host-local range per family, primary first: a dual-stack pod gets an address from each. */
function ipamRanges(node: LabNode): { subnet: string; gateway: string }[][] {
  return nodePodCidrs(node).map((n) => [{ subnet: n.podCidr, gateway: n.podGateway }]);
}

/** A default route per family, via that family's gateway (the pod bridge's address). */
function defaultRoutes(node: LabNode): { dst: string }[] {
  return nodePodCidrs(node).map((n) => ({ dst: isIPv6(n.podGateway) ? '::/0' : '0.0.0.0/0' }));
}

export function nodeConflist(lab: string, node: LabNode): NetworkConfigList {
  return {
    cniVersion: '1.0.0',
    name: LAB_NETWORK_NAME,
    plugins: [
      {
        type: 'bridge',
        bridge: POD_BRIDGE,
        isGateway: true,
        ipMasq: false,
        ipam: {
          type: 'host-local',
          ranges: ipamRanges(node),
          routes: defaultRoutes(node),
          dataDir: ipamDir(lab, node.name),
        },
      },
      { type: 'loopback' },
    ],
  };
}
