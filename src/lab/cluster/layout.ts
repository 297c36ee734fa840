/**
 * Where a running lab keeps its processes' files, all under /var/run/ambit/lab/<lab>/ so that
 * `lab down` removes them with the lab: pid files, logs, the API server's state and kubeconfigs,
 * the shared CA, the CNI bin dir and each node's agent run dir and ZDS socket.
 */
import { join } from 'node:path';
import { labError } from '../errors.js';
import { stateDir } from '../names.js';

export const COMPONENTS = ['apiserver', 'controlplane', 'agent', 'ztunnel', 'kubelet'] as const;
export type Component = (typeof COMPONENTS)[number];
/** Components that run once per lab; the others run once per node. */
export const LAB_COMPONENTS = ['apiserver', 'controlplane'] as const;
export type LabComponent = (typeof LAB_COMPONENTS)[number];

/** One supervised process: the API server and the control plane are per lab, the rest per node. */
export type ProcessId =
  | { component: LabComponent }
  | { component: Exclude<Component, LabComponent>; node: string };

export function isLabComponent(c: Component): c is LabComponent {
  return (LAB_COMPONENTS as readonly string[]).includes(c);
}

/** The node a process runs on; undefined for the lab-wide ones. */
export function nodeOf(id: ProcessId): string | undefined {
  return 'node' in id ? id.node : undefined;
}

/** The port each node reaches the API server on, at 127.0.0.1 inside the node's netns. */
export const NODE_APISERVER_PORT = 6443;
/** Istio's CA + xDS port, reached the same way at 127.0.0.1 inside each node's netns. */
export const CONTROL_PLANE_PORT = 15012;
export const AGENT_HEALTH_PORT = 8000;
export const TRUST_DOMAIN = 'cluster.local';
export const SYSTEM_NAMESPACE = 'istio-system';

export function parseComponent(text: string): Component {
  if ((COMPONENTS as readonly string[]).includes(text)) return text as Component;
  throw labError('LAB_BAD_COMPONENT', `unknown component '${text}' (one of: ${COMPONENTS.join(', ')})`);
}

export function processName(id: ProcessId): string {
  const node = nodeOf(id);
  return node === undefined ? id.component : `${id.component}-${node}`;
}

export class ClusterLayout {
  readonly dir: string;

  constructor(readonly lab: string) {
    this.dir = stateDir(lab);
  }

  pidFile(id: ProcessId): string {
    return join(this.dir, 'pids', `${processName(id)}.pid`);
  }

  logFile(id: ProcessId): string {
    return join(this.dir, 'logs', `${processName(id)}.log`);
  }

  get apiserverState(): string {
    return join(this.dir, 'apiserver', 'state.json');
  }

  /** The admin kubeconfig for this host (`kubectl --kubeconfig`). */
  get kubeconfig(): string {
    return join(this.dir, 'kubeconfig');
  }

  /** Written by the API server process once it listens: its host URL, for the node forwarders. */
  get apiserverUrlFile(): string {
    return join(this.dir, 'apiserver', 'url');
  }

  /** The control plane's root certificate, for the ztunnels to verify it. */
  get controlPlaneRootCert(): string {
    return join(this.dir, 'controlplane', 'root-cert.pem');
  }

  /** Written by the control plane process once it and every node route listen. */
  get controlPlaneReadyFile(): string {
    return join(this.dir, 'controlplane', 'address');
  }

  /** The node's ztunnel service-account token, bound to its ztunnel pod (audience istio-ca). */
  ztunnelToken(node: string): string {
    return join(this.nodeDir(node), 'istio-token');
  }

  get caDir(): string {
    return join(this.dir, 'ca');
  }

  get cniBinDir(): string {
    return join(this.dir, 'cni', 'bin');
  }

  nodeDir(node: string): string {
    return join(this.dir, 'nodes', node);
  }

  /**
   * The node agent's kubeconfig, for inside the node's netns (https://127.0.0.1:6443): the token of
   * istio-system/istio-cni, the account the istio-cni chart gives the node agent. The CNI plugin's
   * kubeconfig is made from it, as the installer does.
   */
  agentKubeconfig(node: string): string {
    return join(this.nodeDir(node), 'kubeconfig');
  }

  /** The kubelet's kubeconfig (host netns): the static token of user system:node:<node>. */
  kubeletKubeconfig(node: string): string {
    return join(this.nodeDir(node), 'kubelet.kubeconfig');
  }

  /** The control plane's token: istio-system/istiod, the account the istiod chart binds its roles to. */
  get controlPlaneToken(): string {
    return join(this.dir, 'controlplane', 'istio-token');
  }

  /** The agent's run dir: pluginevent.sock and the plugin's kubeconfig. */
  agentRunDir(node: string): string {
    return join(this.nodeDir(node), 'run');
  }

  zdsSocket(node: string): string {
    return join(this.nodeDir(node), 'ztunnel.sock');
  }

  /** The kubelet's record of each sandbox it made, so a restarted kubelet adopts them. */
  sandboxDir(node: string): string {
    return join(this.nodeDir(node), 'sandboxes');
  }
}
