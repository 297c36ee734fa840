export { formatCidr, parseCidr } from './cidr.js';
export { LAB_NETWORK_NAME, nodeConflist, primaryOf } from './conflist.js';
export {
  DEFAULT_NODE_CIDR6,
  DEFAULT_POD_CIDR6,
  IP_FAMILIES,
  type IpFamily,
  nodeIps,
} from './ip-family.js';
export {
  createPod,
  DEFAULT_NODE_CIDR,
  DEFAULT_NODE_MASK,
  DEFAULT_POD_CIDR,
  deletePod,
  findNode,
  findPod,
  type LabDownReport,
  type LabUpOptions,
  labDown,
  labExists,
  labUp,
  loadLab,
  planNodes,
} from './lab.js';
export { chooseLab, DEFAULT_LAB, formatPodRef, type PodRef, parsePodRef } from './names.js';
export {
  DEFAULT_PRIMARY_CNI,
  isPrimaryCni,
  PRIMARY_CNIS,
  type PrimaryCni,
  parsePrimaryCni,
} from './primary-cni.js';
export { type ClusterPodRow, renderTopology } from './render.js';
export { type LabNode, type LabPod, type LabState, listLabs } from './state.js';
export { checkPrerequisites, listNetns } from './system.js';
