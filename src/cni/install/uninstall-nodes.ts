/**
 * Takes ambit out of every node while the release's objects still exist (Helm's pre-delete hook).
 *
 * `helm uninstall` deletes the node agent DaemonSet and, in the same breath, the agent's service
 * account and roles: an agent that gets SIGTERM after that can still remove in-pod rules, but no
 * longer its pods' `ambient.istio.io/redirection` annotations. So the hook deletes the DaemonSet
 * first, with foreground propagation, and waits until its pods are gone: each agent, seeing its
 * DaemonSet being deleted, un-meshes its node with its credentials intact (src/agent/agent.ts
 * `shutdown()`), and its installer removes the plugin from the node's CNI config. ztunnel still runs
 * meanwhile, so pods lose no traffic: Helm removes it after the hook.
 */
import { ApiException, AppsV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { errorMessage } from '../../errors.js';
import { logger } from '../../runtime/log.js';
import { AGENT_DAEMONSET_NAME } from '../safe-upgrade.js';
import { installError } from './errors.js';

const log = logger('ambit::cni::uninstall');

/** The label the chart puts on the node agent's pods. */
export const AGENT_POD_SELECTOR = `k8s-app=${AGENT_DAEMONSET_NAME}`;

export interface UninstallNodesOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  daemonSet?: string;
  podSelector?: string;
  /** How long the agents may take to un-mesh their nodes (default 120 s). */
  timeoutMs?: number;
  pollMs?: number;
}

export interface UninstallNodesResult {
  /** False when the DaemonSet was not there (nothing to wait for). */
  deleted: boolean;
  /** Agent pods that were running when the deletion started. */
  agents: number;
  elapsedMs: number;
}

export async function uninstallNodes(o: UninstallNodesOptions): Promise<UninstallNodesResult> {
  const name = o.daemonSet ?? AGENT_DAEMONSET_NAME;
  const selector = o.podSelector ?? AGENT_POD_SELECTOR;
  const ref = `daemonset ${o.namespace}/${name}`;
  const apps = o.kubeConfig.makeApiClient(AppsV1Api);
  const core = o.kubeConfig.makeApiClient(CoreV1Api);
  const started = Date.now();
  const agentPods = async () =>
    (await core.listNamespacedPod({ namespace: o.namespace, labelSelector: selector })).items.length;

  const agents = await agentPods().catch((err) => fail(`cannot list the agent pods (${selector})`, err));
  let deleted = true;
  try {
    await apps.deleteNamespacedDaemonSet({ name, namespace: o.namespace, propagationPolicy: 'Foreground' });
    log.info('deleting the node agents; each takes its node out of the mesh', { daemonset: ref, agents });
  } catch (err) {
    if (!(err instanceof ApiException && err.code === 404)) fail(`cannot delete ${ref}`, err);
    deleted = false;
    log.info('node agent DaemonSet not found; nothing to take out', { daemonset: ref });
  }

  const deadline = started + (o.timeoutMs ?? 120_000);
  for (;;) {
    const left = await agentPods().catch(() => -1);
    const present = await apps
      .readNamespacedDaemonSet({ name, namespace: o.namespace })
      .then(() => true)
      .catch((err) => !(err instanceof ApiException && err.code === 404));
    if (left === 0 && !present) break;
    if (Date.now() > deadline) {
      throw installError(
        'CNI_UNINSTALL_TIMEOUT',
        `${ref} still has ${left < 0 ? 'an unknown number of' : left} pod(s) after ${Math.round((Date.now() - started) / 1000)} s; ` +
          `see their logs (kubectl -n ${o.namespace} logs -l ${selector} -c node-agent). ` +
          'To uninstall without taking pods out of the mesh: helm uninstall --no-hooks',
      );
    }
    await new Promise((r) => setTimeout(r, o.pollMs ?? 1000));
  }
  const elapsedMs = Date.now() - started;
  log.info('node agents gone; every node is out of the mesh', { daemonset: ref, agents, elapsedMs });
  return { deleted, agents, elapsedMs };
}

function fail(what: string, err: unknown): never {
  const detail = err instanceof ApiException ? `HTTP ${err.code}` : errorMessage(err);
  throw installError('CNI_UNINSTALL_FAILED', `${what}: ${detail}`);
}
