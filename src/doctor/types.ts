/** What `ambit doctor` checks, against what, and what it reports. */

import type { BackendName, InboundMode } from '../redirect/index.js';
import type { ListenAddress } from '../runtime/listen-address.js';

export type CheckId = 'ztunnel' | 'listeners' | 'rules' | 'annotation' | 'probe';

export type CheckStatus = 'pass' | 'fail' | 'skip';

export interface CheckResult {
  id: CheckId;
  title: string;
  status: CheckStatus;
  /** What was seen, one line. */
  detail: string;
  /** Extra lines: a rule diff, the listeners found. */
  lines?: string[];
  /** On failure: the likely cause and the command to run next. */
  cause?: string;
  next?: string;
}

/** Everything the checks need to find the pod and its node's ztunnel. */
export interface DoctorTarget {
  namespace: string;
  name: string;
  /** The pod UID as ZDS carries it; without it the pod is matched by name and namespace. */
  uid?: string;
  /** Path of the pod's network namespace (/var/run/netns/x or /proc/PID/ns/net). */
  podNetns: string;
  /** The pod's IPs, when known; otherwise the rule check reads the families from the netns. */
  podIps?: string[];
  /** The netns ztunnel's admin server lives in; null = this process's. */
  nodeNetns: string | null;
  admin: ListenAddress;
  /** For the annotation check; undefined = skipped, with `kubeconfigMissing` as the reason. */
  kubeconfig?: string;
  kubeconfigMissing?: string;
  backend: BackendName;
  inbound: InboundMode;
  /** Whether the pod's rules capture DNS (the agent's AMBIENT_DNS_CAPTURE). */
  dnsCapture: boolean;
  /**
   * The netns the pod's network hangs off (the node's; null = this process's): the probe goes to an
   * address of it, where the doctor listens while it runs.
   */
  hostNetns: string | null;
  /** A given probe destination instead of the node's address (`--probe`); undefined = the node's. */
  probe?: { host: string; port: number };
  /** Commands the report suggests, in the form that works where the pod runs. */
  hints: DoctorHints;
}

export interface DoctorHints {
  /** Prefix that runs a command in the pod netns, e.g. `ambit lab exec ambient-demo/sleep --`. */
  inPod: string;
  /** How to read ztunnel's log for this node. */
  ztunnelLogs: string;
  /** How to read the node agent's log. */
  agentLogs: string;
  /** The `ambit redirect` netns argument. */
  netnsArg: string;
}

export interface DoctorReport {
  pod: string;
  ok: boolean;
  checks: CheckResult[];
}
