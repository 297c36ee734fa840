/**
 * `POST /cmdadd` from the plugin (istio-cni `cni-watcher.go`): find the pod in the informer cache
 * (which may lag the plugin's own API read by a few ms), check it is still ambient, and add it to
 * the mesh with the event's netns and IPs (the pod's status has no IPs yet at sandbox time).
 */
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import type { CniAddEvent } from '../cni/event.js';
import { isAmbientPod } from '../cni/selector.js';
import { logger } from '../runtime/log.js';
import type { CniRequest } from './cni-event-server.js';
import type { AgentSelection } from './config.js';
import { DataplaneError } from './errors.js';
import type { MeshDataplane } from './mesh-dataplane.js';
import { namespaceLabels } from './pods.js';
import type { ClusterView } from './reconciler.js';

const log = logger('ambit::agent::cni');

export interface CniAddOptions {
  view: ClusterView;
  selection: AgentSelection;
  dataplane: Pick<MeshDataplane, 'addPodToMesh'>;
  /** undefined when ready, else why not. */
  notReady: () => string | undefined;
  /** True while the agent takes the node out of the mesh (helm uninstall): new pods start unmeshed. */
  uninstalling?: () => boolean;
  lookupAttempts?: number;
  lookupDelayMs?: number;
}

export function cniAddHandler(o: CniAddOptions): (event: CniAddEvent, request?: CniRequest) => Promise<void> {
  const attempts = o.lookupAttempts ?? 10;
  const delayMs = o.lookupDelayMs ?? 10;
  return async (event, request) => {
    if (o.uninstalling?.()) {
      log.info('ambit is being uninstalled from this node; pod starts without the mesh', {
        pod: `${event.podNamespace}/${event.podName}`,
      });
      return;
    }
    const why = o.notReady();
    if (why) throw new DataplaneError('AGENT_NOT_READY', `node agent not ready: ${why}`, { retryable: true });
    const ref = `${event.podNamespace}/${event.podName}`;
    let pod: V1Pod | undefined;
    let ns: V1Namespace | undefined;
    for (let i = 0; i < attempts; i++) {
      pod = o.view.pod(event.podNamespace, event.podName);
      ns = o.view.namespace(event.podNamespace);
      if (pod && ns) break;
      await new Promise((r) => setTimeout(r, delayMs));
    }
    if (!ns)
      throw new DataplaneError(
        'AGENT_POD_NOT_FOUND',
        `namespace ${event.podNamespace} of pod ${ref} not found`,
        { retryable: true },
      );
    if (!pod)
      throw new DataplaneError('AGENT_POD_NOT_FOUND', `pod ${ref} not found on this node`, {
        retryable: true,
      });
    if (!isAmbientPod(pod, namespaceLabels(ns), o.selection.selectors)) {
      throw new DataplaneError(
        'AGENT_POD_NOT_AMBIENT',
        `pod ${ref} is unexpectedly not eligible for ambient`,
        { retryable: false },
      );
    }
    await o.dataplane.addPodToMesh(pod, event.ips, event.netns, {
      signal: request?.signal,
      seenAt: request?.receivedAt,
    });
  };
}
