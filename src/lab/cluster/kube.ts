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

export async function ensureServiceAccount(core: CoreV1Api, namespace: string, name: string): Promise<void> {
  try {
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  } catch (err) {
    if (!isStatus(err, 409)) throw err;
  }
}

/** The node proxy's pod: host network (the kubelet makes no sandbox for it), service account ztunnel. */
export function ztunnelPod(node: { name: string }): V1Pod {
  return {
    metadata: { name: `ztunnel-${node.name}`, labels: { app: 'ztunnel' } },
    spec: {
      nodeName: node.name,
      hostNetwork: true,
      serviceAccountName: 'ztunnel',
      containers: [{ name: 'ztunnel', image: 'ambit' }],
    },
  };
}

/** A year-long token for the ztunnel pod's service account, bound to the pod so the CA can find its node. */
export async function ztunnelToken(core: CoreV1Api, podName: string): Promise<string> {
  const res = await core.createNamespacedServiceAccountToken({
    namespace: 'istio-system',
    name: 'ztunnel',
    body: {
      spec: {
        audiences: ['istio-ca'],
        expirationSeconds: 365 * 24 * 3600,
        boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: podName },
      },
    },
  });
  const token = res.status?.token;
  if (!token) throw new AmbitError('LAB_API_FAILED', `no token issued for istio-system/ztunnel (${podName})`);
  return token;
}
