/**
 * The CNI 1.x data a runtime handles: network configuration lists, the sandbox a chain runs for,
 * and the Success result plugins print. Unknown keys are kept, since the spec says a runtime must
 * pass them through untouched.
 */

/** One entry of a conflist's `plugins` array; `type` names the executable in CNI_PATH. */
export interface PluginConf {
  type: string;
  /** Keys the plugin wants in `runtimeConfig`, e.g. `{ portMappings: true }`. */
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface NetworkConfigList {
  cniVersion: string;
  name: string;
  plugins: PluginConf[];
  disableCheck?: boolean;
  [key: string]: unknown;
}

/** What the runtime knows about the pod sandbox it attaches (containerd's view of a pod). */
export interface CniSandbox {
  containerId: string;
  /** Path of the sandbox's network namespace, e.g. /var/run/netns/NAME. */
  netns: string;
  ifname: string;
  podNamespace: string;
  podName: string;
  podUid: string;
  /** Defaults to `containerId`, as it is for a pod's infra (pause) container. */
  infraContainerId?: string;
}

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION';

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface CniIpConfig {
  /** CIDR notation: the address and its prefix length, e.g. 10.244.1.2/24. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface CniVersionInfo {
  cniVersion: string;
  supportedVersions: string[];
}
