export { cgroupV2Root, containerCgroup, labCgroup, podCgroup } from './cgroup.js';
export { labProcesses } from './cleanup.js';
export {
  type ClusterPods,
  type ClusterPodView,
  type ComponentStatus,
  clusterDown,
  clusterPod,
  clusterPodNetns,
  clusterPods,
  clusterStatus,
  clusterUp,
  findClusterPod,
  findCniBundle,
  isCluster,
  labKubeconfig,
  type PodAddOptions,
  pendingReason,
  podAdd,
  podDel,
  startComponent,
  stopComponent,
  waitRunning,
} from './cluster.js';
export { findIstioZtunnel } from './istio-ztunnel.js';
export { adminClient, serviceAccountConfig } from './kube.js';
export {
  ClusterLayout,
  COMPONENTS,
  type Component,
  isLabComponent,
  nodeOf,
  type ProcessId,
  parseComponent,
  processName,
  TRUST_DOMAIN,
} from './layout.js';
export { ISTIO_ZTUNNEL_LINK, type LaunchOptions, type NodeProxy } from './processes.js';
export {
  connectionsOpened,
  connectionsOpenedSeries,
  type OpenedSeries,
  proxyPage,
  type ServedPod,
  waitNotServing,
  waitServing,
} from './serving.js';
export { logTail } from './supervisor.js';
