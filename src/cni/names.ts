/**
 * The names ambit's chained plugin is known by: the conflist `type`, the executable, and the files
 * it shares with the node agent in the agent's run dir (all configurable through the plugin config).
 * The run dir and the event socket are the node contract's (src/node/contract.ts).
 */
export const PLUGIN_TYPE = 'ambit-cni';
export const PLUGIN_KUBECONFIG_NAME = 'ambit-cni-kubeconfig';
/** Pods of the node agent's DaemonSet; the plugin lets them through without asking anyone. */
export const AGENT_POD_NAME_PREFIX = 'ambit-cni-node-';
export const DEFAULT_AGENT_NAMESPACE = 'istio-system';
export const DEFAULT_EXCLUDE_NAMESPACES: readonly string[] = ['kube-system'];

/** CNI spec versions the plugin speaks (VERSION output). */
export const SUPPORTED_VERSIONS: readonly string[] = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
