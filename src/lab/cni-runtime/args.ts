/**
 * What a runtime hands a plugin besides the binary: the CNI_* environment and the per-plugin
 * stdin config (the conflist's `cniVersion` and `name`, `prevResult`, `runtimeConfig`).
 */
import { cniRuntimeError } from './errors.js';
import type { CniCommand, CniResult, CniSandbox, NetworkConfigList, PluginConf } from './types.js';

/** `IgnoreUnknown=1;K8S_POD_NAMESPACE=..;K8S_POD_NAME=..;K8S_POD_INFRA_CONTAINER_ID=..;K8S_POD_UID=..`, as containerd sends. */
export function buildCniArgs(sandbox: CniSandbox): string {
  const pairs: [string, string][] = [
    ['IgnoreUnknown', '1'],
    ['K8S_POD_NAMESPACE', sandbox.podNamespace],
    ['K8S_POD_NAME', sandbox.podName],
    ['K8S_POD_INFRA_CONTAINER_ID', sandbox.infraContainerId ?? sandbox.containerId],
    ['K8S_POD_UID', sandbox.podUid],
  ];
  for (const [key, value] of pairs) {
    // `;` and `=` are CNI_ARGS' separators: a value holding one would be read as another key.
    if (/[;=]/.test(value)) {
      throw cniRuntimeError(
        'CNI_INVALID_ARGS',
        `CNI_ARGS value for ${key} must not contain ';' or '=': '${value}'`,
      );
    }
  }
  return pairs.map(([k, v]) => `${k}=${v}`).join(';');
}

/** The environment a plugin runs with: ours minus any inherited CNI_* variables, plus the call's. */
export function buildCniEnv(
  command: CniCommand,
  sandbox: CniSandbox | undefined,
  pluginDirs: readonly string[],
  base: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(base)) if (!k.startsWith('CNI_')) env[k] = v;
  env['CNI_COMMAND'] = command;
  env['CNI_PATH'] = pluginDirs.join(':');
  if (sandbox) {
    env['CNI_CONTAINERID'] = sandbox.containerId;
    env['CNI_NETNS'] = sandbox.netns;
    env['CNI_IFNAME'] = sandbox.ifname;
    env['CNI_ARGS'] = buildCniArgs(sandbox);
  }
  return env;
}

/**
 * The stdin config for one plugin of `list`: the plugin's own keys (unknown ones passed through),
 * the list's `cniVersion` and `name`, `prevResult` when there is one, and the `runtimeConfig`
 * entries the plugin declared in `capabilities`.
 */
export function buildPluginConfig(
  list: NetworkConfigList,
  plugin: PluginConf,
  prevResult: CniResult | undefined,
  runtimeConfig: Readonly<Record<string, unknown>> = {},
): Record<string, unknown> {
  const config: Record<string, unknown> = { ...plugin, cniVersion: list.cniVersion, name: list.name };
  delete config['prevResult'];
  delete config['runtimeConfig'];
  if (prevResult !== undefined) config['prevResult'] = prevResult;
  const wanted = Object.entries(plugin.capabilities ?? {})
    .filter(([key, on]) => on && key in runtimeConfig)
    .map(([key]) => [key, runtimeConfig[key]] as const);
  if (wanted.length > 0) config['runtimeConfig'] = Object.fromEntries(wanted);
  return config;
}

/** Checks the shape of a conflist before any plugin runs, so a typo fails with a clear message. */
export function validateConfList(value: unknown): NetworkConfigList {
  const fail = (why: string): never => {
    throw cniRuntimeError('CNI_INVALID_CONFLIST', `invalid CNI network configuration list: ${why}`);
  };
  if (!value || typeof value !== 'object' || Array.isArray(value)) return fail('not a JSON object');
  const v = value as Record<string, unknown>;
  if (typeof v['cniVersion'] !== 'string' || v['cniVersion'] === '')
    fail("'cniVersion' must be a non-empty string");
  if (typeof v['name'] !== 'string' || v['name'] === '') fail("'name' must be a non-empty string");
  if (!Array.isArray(v['plugins']) || v['plugins'].length === 0) fail("'plugins' must be a non-empty array");
  (v['plugins'] as unknown[]).forEach((p, i) => {
    if (!p || typeof p !== 'object' || Array.isArray(p)) fail(`plugins[${i}] is not an object`);
    const type = (p as Record<string, unknown>)['type'];
    if (typeof type !== 'string' || !/^[A-Za-z0-9._-]+$/.test(type)) {
      fail(`plugins[${i}].type must be a plugin binary name (got ${JSON.stringify(type)})`);
    }
  });
  return value as NetworkConfigList;
}
