/** The lab's admin client (@kubernetes/client-node over the host kubeconfig) and the few calls `lab` makes. */
import { readFileSync } from 'node:fs';
import { ApiException, CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { API_AUDIENCE } from '../apiserver/index.js';
import { labError } from '../errors.js';
import { ClusterLayout } from './layout.js';

export function adminKubeconfig(lab: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(new ClusterLayout(lab).kubeconfig);
  return kc;
}

export function adminClient(lab: string): CoreV1Api {
  return adminKubeconfig(lab).makeApiClient(CoreV1Api);
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
    throw labError('LAB_API_FAILED', `reading pod ${namespace}/${name}: ${(err as Error).message}`);
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

/**
 * A year-long token for a component's service account, as the lab's installer hands it out.
 * ztunnel's is bound to its pod (audience istio-ca) so the CA can find its node; the node agent's
 * and istiod's are for the API server and unbound: the lab runs no pods for them.
 */
export async function serviceAccountToken(
  core: CoreV1Api,
  namespace: string,
  name: string,
  opts: { audiences?: string[]; pod?: string } = {},
): Promise<string> {
  const res = await core.createNamespacedServiceAccountToken({
    namespace,
    name,
    body: {
      spec: {
        audiences: opts.audiences ?? [API_AUDIENCE],
        expirationSeconds: 365 * 24 * 3600,
        ...(opts.pod ? { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: opts.pod } } : {}),
      },
    },
  });
  const token = res.status?.token;
  if (!token)
    throw labError(
      'LAB_API_FAILED',
      `no token issued for ${namespace}/${name}${opts.pod ? ` (${opts.pod})` : ''}`,
    );
  return token;
}

/**
 * A client as `name` in `namespace`: the admin kubeconfig's cluster (its current URL and CA) with
 * the service account's token in place of the admin's, as a pod's in-cluster config would be.
 */
export function serviceAccountConfig(lab: string, tokenFile: string, user: string): KubeConfig {
  const admin = new KubeConfig();
  admin.loadFromFile(new ClusterLayout(lab).kubeconfig);
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw labError('LAB_API_FAILED', `the lab kubeconfig of ${lab} names no cluster`);
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: user, token: readFileSync(tokenFile, 'utf8').trim() }],
    contexts: [{ name: user, cluster: cluster.name, user }],
    currentContext: user,
  });
  return kc;
}
