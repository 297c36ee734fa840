/**
 * What each informer event means for the mesh (istio-cni `informers.go`). Events are handled one
 * at a time from the work queue; a thrown error makes the queue retry the event with backoff.
 */
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import { matchesNamespace } from '../cni/selector.js';
import { errorMessage, isRetryable } from '../errors.js';
import { logger } from '../runtime/log.js';
import type { Counter } from '../runtime/metrics.js';
import type { AgentSelection } from './config.js';
import type { MeshDataplane } from './mesh-dataplane.js';
import {
  isTerminal,
  isZtunnelPod,
  namespaceLabels,
  podIps,
  podRef,
  podUid,
  redirectionState,
  sameIpSet,
  shouldBeEnrolled,
} from './pods.js';

const log = logger('ambit::agent::informers');

export type AgentEvent =
  | { type: 'pod-add'; pod: V1Pod }
  | { type: 'pod-update'; old: V1Pod; pod: V1Pod }
  | { type: 'pod-delete'; pod: V1Pod }
  | { type: 'ns-add'; ns: V1Namespace }
  | { type: 'ns-update'; old: V1Namespace; ns: V1Namespace }
  | { type: 'ns-delete'; ns: V1Namespace };

/** The informer caches, read at processing time (they may be newer than the event). */
export interface ClusterView {
  pod(namespace: string, name: string): V1Pod | undefined;
  namespace(name: string): V1Namespace | undefined;
  podsIn(namespace: string): readonly V1Pod[];
}

export interface ReconcilerOptions {
  view: ClusterView;
  dataplane: Pick<MeshDataplane, 'addPodToMesh' | 'removePodFromMesh' | 'syncHostProbeIps'>;
  selection: AgentSelection;
  systemNamespace: string;
  /** Where namespace fan-out puts the synthetic pod updates (the work queue). */
  enqueue: (event: AgentEvent) => void;
  /** `nodeagent_reconcile_events_total{type}`. */
  events?: Counter<'type'>;
}

export function metricType(event: AgentEvent): 'add' | 'update' | 'delete' {
  return event.type.endsWith('add') ? 'add' : event.type.endsWith('delete') ? 'delete' : 'update';
}

export class Reconciler {
  readonly #o: ReconcilerOptions;

  constructor(options: ReconcilerOptions) {
    this.#o = options;
  }

  async handle(event: AgentEvent): Promise<void> {
    this.#o.events?.inc({ type: metricType(event) });
    switch (event.type) {
      case 'ns-add':
        return this.#fanOut(event.ns);
      case 'ns-update': {
        const { selectors } = this.#o.selection;
        const before = matchesNamespace(namespaceLabels(event.old), selectors);
        const after = matchesNamespace(namespaceLabels(event.ns), selectors);
        if (before !== after) this.#fanOut(event.ns);
        return;
      }
      case 'pod-update':
        return this.#podUpdate(event.old, event.pod);
      case 'pod-delete':
        return this.#podDelete(event.pod);
      case 'pod-add':
      case 'ns-delete':
        // New pods come through the CNI plugin; running ones through namespace fan-out.
        return;
    }
  }

  #fanOut(ns: V1Namespace): void {
    const name = ns.metadata?.name ?? '';
    for (const pod of this.#o.view.podsIn(name)) {
      if (isZtunnelPod(pod, this.#o.systemNamespace)) continue;
      this.#o.enqueue({ type: 'pod-update', old: pod, pod });
    }
  }

  async #podUpdate(old: V1Pod, event: V1Pod): Promise<void> {
    const namespace = event.metadata?.namespace ?? '';
    const ns = this.#o.view.namespace(namespace);
    if (!ns) return;
    const current = this.#o.view.pod(namespace, event.metadata?.name ?? '');
    if (!current || podUid(current) !== podUid(event)) return;
    const { dataplane } = this.#o;
    const state = redirectionState(current);
    const enrolled = state === 'enabled';
    const partial = state === 'pending';
    const should = shouldBeEnrolled(current, ns, this.#o.selection);
    const terminal = isTerminal(current);
    const change = enrolled !== should || partial;
    const ips = podIps(current);

    if ((enrolled || partial) && terminal) {
      // The previous copy: a terminal status may come without IPs (kubernetes#125370).
      log.info('pod is terminal, removing it from the mesh', { pod: podRef(current) });
      return dataplane.removePodFromMesh(old, true);
    }
    if (enrolled && should && !terminal && ips.length > 0 && !sameIpSet(ips, podIps(old))) {
      await dataplane.syncHostProbeIps(current, ips);
    }
    if (!change || terminal) return;
    if (!should) {
      log.info('pod no longer selected for ambient, removing it from the mesh', { pod: podRef(current) });
      return dataplane.removePodFromMesh(current, false);
    }
    if (ips.length === 0) return;
    log.info('pod selected for ambient, adding it to the mesh', { pod: podRef(current) });
    try {
      await dataplane.addPodToMesh(current, ips);
    } catch (err) {
      if (isRetryable(err)) throw err;
      log.error('cannot add pod to the mesh; not retrying', {
        pod: podRef(current),
        error: errorMessage(err),
      });
    }
  }

  async #podDelete(pod: V1Pod): Promise<void> {
    const namespace = pod.metadata?.namespace ?? '';
    const ns = this.#o.view.namespace(namespace);
    const state = redirectionState(pod);
    const selected = ns !== undefined && shouldBeEnrolled(pod, ns, this.#o.selection);
    if (state === undefined && !selected) return;
    log.info('pod deleted, removing it from the mesh', { pod: podRef(pod) });
    await this.#o.dataplane.removePodFromMesh(pod, true);
  }
}
