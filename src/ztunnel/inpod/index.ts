/** In-pod mode of the node proxy: configuration, the ZDS client and the per-pod state manager. */
import { configError } from '../../runtime/options.js';
import { type InPodConfig, logInPodConfig } from './config.js';
import type { InPodProxyFactory } from './proxy.js';
import { InPodStateManager } from './statemanager.js';
import { WorkloadProxyManager } from './workloadmanager.js';

export { type InPodConfig, inPodConfigFromEnv, logInPodConfig } from './config.js';
export type { InPodProxy, InPodProxyFactory, StopMode } from './proxy.js';
export {
  InPodStateManager,
  type WorkloadStateEntry,
  ZDS_NETNS_REFUSED,
  ZDS_PROTOCOL,
  ZDS_PROXY_START,
} from './statemanager.js';
export { type SessionEnd, type WorkloadManagerOptions, WorkloadProxyManager } from './workloadmanager.js';

export interface StartInPodOptions {
  config: InPodConfig;
  factory: InPodProxyFactory;
  /** Default 5 s (upstream RETRY_DURATION); tests shorten it. */
  retryIntervalMs?: number;
}

/** Prints the in-pod start-up lines and starts connecting to the node agent. */
export function startInPod(options: StartInPodOptions): WorkloadProxyManager {
  logInPodConfig(options.config);
  if (!options.config.enabled) {
    throw configError('in-pod mode is disabled (PROXY_MODE=dedicated): there is no node agent to connect to');
  }
  const manager = new WorkloadProxyManager(new InPodStateManager(options.factory), {
    uds: options.config.uds,
    retryIntervalMs: options.retryIntervalMs,
  });
  manager.start();
  return manager;
}
