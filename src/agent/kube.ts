/**
 * The agent's view of the Kubernetes API through @kubernetes/client-node: a pod informer limited
 * to this node (`spec.nodeName=<node>`, all namespaces) and a namespace informer, each turned into
 * AgentEvents carrying the previous copy of the object; and the annotation patch on `pods/status`.
 */
import {
  ApiException,
  type CoreV1Api,
  type KubeConfig,
  type KubernetesObject,
  ListWatch,
  PatchStrategy,
  setHeaderOptions,
  type V1Namespace,
  type V1Pod,
  Watch,
} from '@kubernetes/client-node';
import { errorMessage } from '../errors.js';
import { logger } from '../runtime/log.js';
import { agentError } from './errors.js';
import type { Annotator } from './mesh-dataplane.js';
import { podRef, REDIRECTION_ANNOTATION, type RedirectionState } from './pods.js';
import type { AgentEvent, ClusterView } from './reconciler.js';

const log = logger('ambit::agent::informers');
const RESTART_MS = 1000;

/** One ListWatch that restarts after errors and remembers each object's previous copy. */
class Informer<T extends KubernetesObject> {
  readonly lw: ListWatch<T>;
  readonly #last = new Map<string, T>();
  #listed = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  #onSynced: (() => void)[] = [];

  constructor(
    readonly what: string,
    kc: KubeConfig,
    path: string,
    list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>,
    fieldSelector: string | undefined,
    on: { add(obj: T): void; update(old: T, obj: T): void; delete(obj: T): void },
  ) {
    const listed = async () => {
      const result = await list();
      this.#listed = true;
      return result;
    };
    this.lw = new ListWatch<T>(path, new Watch(kc), listed as never, false, undefined, fieldSelector);
    const key = (o: T) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
    this.lw.on('add', (obj) => {
      this.#last.set(key(obj), obj);
      on.add(obj);
    });
    this.lw.on('update', (obj) => {
      const old = this.#last.get(key(obj)) ?? obj;
      this.#last.set(key(obj), obj);
      on.update(old, obj);
    });
    this.lw.on('delete', (obj) => {
      this.#last.delete(key(obj));
      on.delete(obj);
    });
    this.lw.on('error', (err) => {
      if (this.#stopped) return;
      log.warn('watch failed, restarting', { resource: what, error: errorMessage(err) });
      this.#timer = setTimeout(() => this.#start(), RESTART_MS);
    });
  }

  get synced(): boolean {
    return this.#listed;
  }

  /** Resolves once the first list is in the cache (retried until the API server answers). */
  start(): Promise<void> {
    const synced = new Promise<void>((resolve) => this.#onSynced.push(resolve));
    this.#start();
    return synced;
  }

  #start(): void {
    if (this.#stopped) return;
    this.lw.start().then(
      () => {
        if (this.#listed) for (const f of this.#onSynced.splice(0)) f();
      },
      (err) => log.warn('watch start failed', { resource: this.what, error: errorMessage(err) }),
    );
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    void this.lw.stop();
  }
}

export class KubeWatcher implements ClusterView {
  readonly #pods: Informer<V1Pod>;
  readonly #namespaces: Informer<V1Namespace>;

  constructor(kc: KubeConfig, core: CoreV1Api, nodeName: string, emit: (event: AgentEvent) => void) {
    this.#pods = new Informer<V1Pod>(
      'pods',
      kc,
      '/api/v1/pods',
      () => core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${nodeName}` }),
      `spec.nodeName=${nodeName}`,
      {
        add: (pod) => emit({ type: 'pod-add', pod }),
        update: (old, pod) => emit({ type: 'pod-update', old, pod }),
        delete: (pod) => emit({ type: 'pod-delete', pod }),
      },
    );
    this.#namespaces = new Informer<V1Namespace>(
      'namespaces',
      kc,
      '/api/v1/namespaces',
      () => core.listNamespace(),
      undefined,
      {
        add: (ns) => emit({ type: 'ns-add', ns }),
        update: (old, ns) => emit({ type: 'ns-update', old, ns }),
        delete: (ns) => emit({ type: 'ns-delete', ns }),
      },
    );
  }

  get synced(): boolean {
    return this.#pods.synced && this.#namespaces.synced;
  }

  /** Namespaces first, so pod events processed later find their namespace. */
  async start(): Promise<void> {
    await this.#namespaces.start();
    await this.#pods.start();
  }

  stop(): void {
    this.#pods.stop();
    this.#namespaces.stop();
  }

  pod(namespace: string, name: string): V1Pod | undefined {
    return this.#pods.lw.get(name, namespace);
  }

  namespace(name: string): V1Namespace | undefined {
    return this.#namespaces.lw.get(name);
  }

  podsIn(namespace: string): readonly V1Pod[] {
    return this.#pods.lw.list(namespace);
  }

  allPods(): readonly V1Pod[] {
    return this.#pods.lw.list();
  }
}

/** JSON merge patch on `pods/status` (the agent's RBAC allows that, not pod updates). */
export class StatusAnnotator implements Annotator {
  constructor(readonly core: CoreV1Api) {}

  async set(pod: V1Pod, value: RedirectionState | null): Promise<void> {
    const name = pod.metadata?.name ?? '';
    const namespace = pod.metadata?.namespace ?? '';
    try {
      await this.core.patchNamespacedPodStatus(
        { name, namespace, body: { metadata: { annotations: { [REDIRECTION_ANNOTATION]: value } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (err) {
      if (value === null && err instanceof ApiException && err.code === 404) return;
      const detail = err instanceof ApiException ? `HTTP ${err.code}` : errorMessage(err);
      throw agentError(
        'AGENT_ANNOTATE_FAILED',
        `patching ${REDIRECTION_ANNOTATION} of pod ${podRef(pod)}: ${detail}`,
        {
          cause: err,
        },
      );
    }
  }
}
