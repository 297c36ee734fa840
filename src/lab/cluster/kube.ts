/** The lab's admin client (@kubernetes/client-node over the host kubeconfig) and the few calls `lab` makes. */
import { ApiException, CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { AmbitError } from '../../errors.js';
import { ClusterLayout } from './layout.js';

export function adminClient(lab: string): CoreV1Api {
  const kc = new KubeConfig();
  kc.loadFromFile(new ClusterLayout(lab).kubeconfig);
  return kc.makeApiClient(CoreV1Api);
}

export function isStatus(err: unknown, code: number): boolean {
  return err instanceof ApiException && err.code === code;
}

/** Creates the namespace unless it exists (a cluster would need `kubectl create ns` first; the lab does it). */
export async function ensureNamespace(
  core: CoreV1Api,
  name: string,
  labels?: Record<string, string>,
): Promise<void> {
  try {
    await core.createNamespace({ body: { metadata: { name, ...(labels ? { labels } : {}) } } });
  } catch (err) {
    if (!isStatus(err, 409)) throw err;
  }
}

export async function readPod(core: CoreV1Api, namespace: string, name: string): Promise<V1Pod | undefined> {
  try {
    return await core.readNamespacedPod({ namespace, name });
  } catch (err) {
    if (isStatus(err, 404)) return undefined;
    throw new AmbitError('LAB_API_FAILED', `reading pod ${namespace}/${name}: ${(err as Error).message}`);
  }
}
