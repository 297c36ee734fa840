/**
 * The primary CNI network of a lab node, as a cluster's CNI would install it: the reference
 * `bridge` plugin (a bridge inside the node netns, pods' gateway, no masquerade) with `host-local`
 * IPAM over the node's pod CIDR, then `loopback`. Later issues chain ambit's plugin after these.
 */
import type { NetworkConfigList } from './cni-runtime/index.js';
import { POD_BRIDGE, stateDir } from './names.js';
import type { LabNode } from './state.js';

export const LAB_NETWORK_NAME = 'ambit-lab';

export function ipamDir(lab: string, node: string): string {
  return `${stateDir(lab)}/ipam/${node}`;
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
          ranges: [[{ subnet: node.podCidr, gateway: node.podGateway }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: ipamDir(lab, node.name),
        },
      },
      { type: 'loopback' },
    ],
  };
}
