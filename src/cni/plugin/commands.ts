/**
 * The six CNI commands. ambit's plugin does no networking itself: ADD tells the node agent about an
 * ambient pod and passes `prevResult` through; teardown is the agent's, so DEL/CHECK/GC succeed.
 */
import { join } from 'node:path';
import { errorCode, errorMessage } from '../../errors.js';
import { EVENT_SOCKET_NAME } from '../../node/contract.js';
import { wireIps } from '../event.js';
import { readKubeconfig } from '../kubeconfig.js';
import { AGENT_POD_NAME_PREFIX, PLUGIN_KUBECONFIG_NAME, SUPPORTED_VERSIONS } from '../names.js';
import { agentNotReady, postCmdAdd } from './agent-client.js';
import { detectAmbient, type PodSource, type RetryPolicy, retryPolicy } from './ambient.js';
import type { PluginConfig } from './config.js';
import type { CniEnv } from './env.js';
import { CniCode, CniError } from './errors.js';
import { KubeReader } from './kube.js';
import type { PluginLog } from './log.js';

export interface PluginContext {
  env: CniEnv;
  config: PluginConfig;
  log: PluginLog;
  /** Overrides for tests; production reads the kubeconfig in the run dir and uses istio-cni's retry numbers. */
  podSource?: PodSource;
  retry?: RetryPolicy;
}

export function versionInfo(): string {
  return JSON.stringify({ cniVersion: '1.1.0', supportedVersions: SUPPORTED_VERSIONS });
}

function passThrough(config: PluginConfig): string {
  return JSON.stringify({ ...(config.prevResult ?? {}), cniVersion: config.cniVersion });
}

function podSource(config: PluginConfig): PodSource {
  const file = join(config.agentRunDir, PLUGIN_KUBECONFIG_NAME);
  try {
    return new KubeReader(readKubeconfig(file));
  } catch (err) {
    // Missing after a node reboot until the agent rewrites it: a transient state, so "try again later".
    if (errorCode(err) === 'ENOENT') {
      throw new CniError(
        CniCode.TryAgainLater,
        `kubeconfig ${file} does not exist yet (is the ambit node agent running?)`,
      );
    }
    throw new CniError(CniCode.InvalidConfig, `cannot use kubeconfig ${file}: ${errorMessage(err)}`);
  }
}

export async function cmdAdd(ctx: PluginContext): Promise<string> {
  const { config, log } = ctx;
  const name = ctx.env.args.K8S_POD_NAME;
  const namespace = ctx.env.args.K8S_POD_NAMESPACE;
  const fields = { pod: `${namespace}/${name}`, containerID: ctx.env.containerId };
  // The agent's own pod must start even when no kubeconfig exists yet (node reboot, tmpfs run dir).
  if (name.startsWith(AGENT_POD_NAME_PREFIX) && namespace === config.podNamespace) {
    log.info('node agent pod, passing through', fields);
    return passThrough(config);
  }
  if (!name || !namespace) {
    log.debug('no K8S_POD_NAME/K8S_POD_NAMESPACE in CNI_ARGS: not a Kubernetes pod, passing through', fields);
    return passThrough(config);
  }
  if (config.excludeNamespaces.includes(namespace)) {
    log.debug('namespace excluded, passing through', fields);
    return passThrough(config);
  }
  if (!config.ambientEnabled) return passThrough(config);

  let ambient: boolean;
  try {
    ambient = await detectAmbient(
      ctx.podSource ?? podSource(config),
      namespace,
      name,
      config.enablementSelectors,
      ctx.retry ?? retryPolicy(config.enableAmbientDetectionRetry),
      log,
    );
  } catch (err) {
    if (err instanceof CniError) throw err;
    if (config.enableAmbientDetectionRetry) {
      throw new CniError(
        CniCode.TryAgainLater,
        `cannot tell whether pod ${namespace}/${name} is ambient: ${errorMessage(err)}`,
      );
    }
    log.warn('pod lookup failed, treating the pod as not ambient', { ...fields, error: errorMessage(err) });
    return passThrough(config);
  }
  if (!ambient) {
    log.debug('pod is not ambient, passing through', fields);
    return passThrough(config);
  }

  // Without the pod's IPs the agent would enrol it with none (no probe entry, no rules for its
  // addresses): a chaining mistake, reported as invalid configuration rather than half-enrolled.
  const chained = 'ambit-cni must be chained after the plugin that gives the pod its IPs';
  if (!config.prevResult) {
    throw new CniError(
      CniCode.InvalidConfig,
      `ambient pod ${namespace}/${name}: ADD has no prevResult; ${chained}`,
    );
  }
  let ips: ReturnType<typeof wireIps>;
  try {
    ips = wireIps(config.prevResult['ips']);
  } catch (err) {
    throw new CniError(CniCode.InvalidConfig, errorMessage(err));
  }
  if (ips.length === 0) {
    throw new CniError(
      CniCode.InvalidConfig,
      `ambient pod ${namespace}/${name}: prevResult has no IPs; ${chained}`,
    );
  }
  const socket = join(config.agentRunDir, EVENT_SOCKET_NAME);
  try {
    await postCmdAdd(socket, { Netns: ctx.env.netns, PodName: name, PodNamespace: namespace, IPs: ips });
  } catch (err) {
    throw new CniError(
      CniCode.TryAgainLater,
      `pod ${namespace}/${name} not added to the ambient mesh: ${errorMessage(err)}`,
    );
  }
  log.info('ambient pod added by the node agent', { ...fields, ips: ips.map((i) => i.Address.IP).join(',') });
  return passThrough(config);
}

const atLeast11 = (v: string) => v === '1.1.0';

export async function cmdStatus(ctx: PluginContext): Promise<string> {
  if (!atLeast11(ctx.config.cniVersion)) {
    throw new CniError(
      CniCode.IncompatibleVersion,
      `STATUS needs cniVersion 1.1.0, config has ${ctx.config.cniVersion}`,
    );
  }
  const why = await agentNotReady(join(ctx.config.agentRunDir, EVENT_SOCKET_NAME));
  if (why) throw new CniError(CniCode.NotAvailable, why);
  return '';
}

export function cmdGc(ctx: PluginContext): string {
  if (!atLeast11(ctx.config.cniVersion)) {
    throw new CniError(
      CniCode.IncompatibleVersion,
      `GC needs cniVersion 1.1.0, config has ${ctx.config.cniVersion}`,
    );
  }
  // Nothing of ours outlives an attachment on the host: the agent's pod informer owns all state.
  ctx.log.debug('GC: nothing to collect', { validAttachments: ctx.config.validAttachments?.length ?? 0 });
  return '';
}
