/**
 * The agent's codes. Dataplane failures are marked retryable (the queue tries again with backoff) or not
 * (logged and dropped); the agent's other failures are plain coded errors.
 */
import { codedError, RetryableError } from '../errors.js';

export type DataplaneErrorCode =
  /** No netns path was given and neither the cache nor the /proc scan knows the pod's netns. */
  | 'AGENT_NETNS_NOT_FOUND'
  /** The netns path from the CNI event cannot be opened. */
  | 'AGENT_NETNS_OPEN'
  /** The event's netns is not the pod's: a newer netns of the pod was enrolled after the event was sent. */
  | 'AGENT_NETNS_STALE'
  /** The plugin that sent the CNI event has gone (it gave up waiting): the event is dropped, undone if begun. */
  | 'AGENT_CALLER_GONE'
  /** The in-pod rules could not be written. */
  | 'AGENT_RULES_FAILED'
  /** The in-pod rules could not be removed from a running pod. */
  | 'AGENT_RULES_REMOVE_FAILED'
  /** ztunnel did not take (or drop) the pod: not connected, NACK or no ack in time. */
  | 'AGENT_ZTUNNEL_FAILED'
  /** The host probe set could not be updated. */
  | 'AGENT_PROBE_SET_FAILED'
  /** The pod's redirection annotation could not be written. */
  | 'AGENT_ANNOTATE_FAILED'
  /** The agent is still starting (informers not synced). */
  | 'AGENT_NOT_READY'
  /** The pod named by a CNI event is not in the informer cache, or not (any longer) ambient. */
  | 'AGENT_POD_NOT_FOUND'
  | 'AGENT_POD_NOT_AMBIENT';

/** ambit's one retryable error class, with the dataplane's codes. */
export const DataplaneError = RetryableError<DataplaneErrorCode>;
export type DataplaneError = RetryableError<DataplaneErrorCode>;

export type AgentErrorCode =
  | DataplaneErrorCode
  | 'CNI_SOCKET_PATH_INVALID' // the CNI event socket path is a directory
  | 'AGENT_CGROUP_INVALID' // a /proc/PID/cgroup line that is not hier:controllers:path
  | 'AGENT_CGROUP_AMBIGUOUS' // cgroup lines naming two pods or two containers
  | 'AGENT_NETNS_ADDRESSES' // the addresses in a netns cannot be listed
  | 'AGENT_PROC_STAT' // a malformed /proc/PID/stat
  | 'AGENT_PROC_SCAN'; // /proc cannot be read

/** An agent failure without a retryable flag (the queue retries those: isRetryable). */
export const agentError = codedError<AgentErrorCode>;
