/** The codes the lab (`ambit lab`: nodes, pods, the lab cluster) raises on purpose, printed as `[CODE]`. */
import { type CodedError, codedError } from '../errors.js';

export type LabErrorCode =
  | 'LAB_NOT_ROOT'
  | 'LAB_MISSING_TOOL' // a command the lab runs is not installed
  | 'LAB_COMMAND_FAILED'
  | 'LAB_NO_CNI_PLUGIN' // the ambit-cni plugin bundle or a reference plugin is not built
  | 'LAB_BUSY' // another lab command holds the lock
  | 'LAB_BAD_NAME'
  | 'LAB_BAD_NODES'
  | 'LAB_BAD_PODS'
  | 'LAB_BAD_POD' // not <namespace>/<name>, or not a valid namespace or name
  | 'LAB_BAD_PRIMARY_CNI' // not one of the reference plugins a lab can use as its primary
  | 'LAB_PRIMARY_UNSUPPORTED' // this kernel lacks the link type the primary CNI needs (ipvlan, macvlan)
  | 'LAB_BAD_CIDR' // not a CIDR, or node and pod ranges that do not fit together
  | 'LAB_BAD_IP_FAMILY' // not ipv4, ipv6 or dual
  | 'LAB_SUBNET_TOO_SMALL' // a CIDR with no room for the host or block asked for
  | 'LAB_BAD_COMPONENT'
  | 'LAB_EXISTS'
  | 'LAB_NOT_FOUND'
  | 'LAB_NOT_CHOSEN' // several labs exist and the command names none
  | 'LAB_STATE_CORRUPT' // the lab's state file is not a state this version reads
  | 'LAB_NODE_NOT_FOUND'
  | 'LAB_POD_EXISTS'
  | 'LAB_POD_NOT_FOUND'
  | 'LAB_POD_NOT_RUNNING' // a pod of the lab cluster did not reach Running in time
  | 'LAB_POD_STUCK' // a pod of the lab cluster stays Terminating
  | 'LAB_POD_PROCESS' // a pod's process cannot be started
  | 'LAB_POD_NOT_READY' // a pod's app did not listen in time
  | 'LAB_NO_POD_IP' // the CNI chain returned no address for the pod
  | 'LAB_API_FAILED' // a call to the lab's API server failed
  | 'LAB_COMPONENT_RUNNING' // a lab cluster process already runs
  | 'LAB_COMPONENT_FAILED' // a lab cluster process exited or did not become ready
  | 'LAB_CAPTURE_FAILED' // tcpdump did not start or failed
  | 'LAB_CAPTURE_INCOMPLETE'; // tcpdump dropped packets

export type LabError = CodedError<LabErrorCode>;
export const labError = codedError<LabErrorCode>;
