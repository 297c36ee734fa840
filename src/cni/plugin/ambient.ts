/**
 * Is this new pod ambient? Both the Pod and its Namespace are read from the API server on every
 * attempt (constant 1 s back-off, as istio-cni); the labels then go through the enablement selectors.
 */
import { errorMessage } from '../../errors.js';
import { type EnablementSelector, isAmbientPod } from '../selector.js';
import type { KubeObject, KubePod } from './kube.js';
import type { PluginLog } from './log.js';

export interface PodSource {
  getPod(namespace: string, name: string): Promise<KubePod>;
  getNamespace(name: string): Promise<KubeObject>;
}

export interface RetryPolicy {
  attempts: number;
  backoffMs: number;
}

/** 2 attempts normally, 31 with `enable_ambient_detection_retry` (istio-cni's numbers). */
export function retryPolicy(detectionRetry: boolean): RetryPolicy {
  return { attempts: detectionRetry ? 31 : 2, backoffMs: 1_000 };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves to the decision; rejects with the last lookup error when every attempt failed. */
export async function detectAmbient(
  source: PodSource,
  namespace: string,
  name: string,
  selectors: readonly EnablementSelector[],
  policy: RetryPolicy,
  log: PluginLog,
): Promise<boolean> {
  let last: unknown;
  for (let attempt = 1; attempt <= policy.attempts; attempt++) {
    try {
      const [pod, ns] = await Promise.all([source.getPod(namespace, name), source.getNamespace(namespace)]);
      return isAmbientPod(pod, ns.metadata?.labels, selectors);
    } catch (err) {
      last = err;
      log.debug('pod lookup failed', { attempt, of: policy.attempts, error: errorMessage(err) });
      if (attempt < policy.attempts) await sleep(policy.backoffMs);
    }
  }
  throw last;
}
