/**
 * Watches pods and services through @kubernetes/client-node informers (exactly as against a real cluster)
 * and rebuilds the xDS resource cache from them and the policy source. Rebuilds are coalesced: a burst
 * of events costs one rebuild. A failed watch is restarted after a pause, keeping the last state.
 */
import {
  CoreV1Api,
  type KubeConfig,
  type Informer as KubeInformer,
  type KubernetesObject,
  makeInformer,
  type ObjectCache,
  type V1Pod,
  type V1Service,
} from '@kubernetes/client-node';
import type { Authorization } from '../discovery/types.js';
import { errorMessage } from '../errors.js';
import { logger } from '../runtime/log.js';
import type { PodInfo, PodLookup } from './ca/service.js';
import { type ClusterIdentity, serviceOf, workloadOf } from './xds/cluster-model.js';
import type { ResourceCache } from './xds/resource-cache.js';

const log = logger('ambit::controlplane::kube');
const RESTART_DELAY_MS = 1000;

type Informer<T extends KubernetesObject> = KubeInformer<T> & ObjectCache<T>;

export class KubeSource {
  readonly #pods: Informer<V1Pod>;
  readonly #services: Informer<V1Service>;
  readonly #timers = new Set<NodeJS.Timeout>();
  #scheduled = false;
  #stopped = false;
  #policies: Authorization[] = [];

  constructor(
    kubeconfig: KubeConfig,
    readonly cache: ResourceCache,
    readonly cluster: ClusterIdentity,
  ) {
    const core = kubeconfig.makeApiClient(CoreV1Api);
    this.#pods = makeInformer<V1Pod>(kubeconfig, '/api/v1/pods', () => core.listPodForAllNamespaces());
    this.#services = makeInformer<V1Service>(kubeconfig, '/api/v1/services', () =>
      core.listServiceForAllNamespaces(),
    );
    this.#watch('pods', this.#pods);
    this.#watch('services', this.#services);
  }

  #watch<T extends KubernetesObject>(name: string, informer: Informer<T>): void {
    const changed = (): void => this.#schedule();
    informer.on('add', changed);
    informer.on('update', changed);
    informer.on('delete', changed);
    informer.on('error', (err) => {
      if (this.#stopped) return;
      log.warn('watch failed, restarting', { resource: name, error: errorMessage(err) });
      const t = setTimeout(() => {
        this.#timers.delete(t);
        if (!this.#stopped) informer.start().catch(() => undefined);
      }, RESTART_DELAY_MS);
      this.#timers.add(t);
    });
  }

  /** Resolves once both initial lists are in and the cache holds them. */
  async start(): Promise<void> {
    await Promise.all([this.#pods.start(), this.#services.start()]);
    this.rebuild();
  }

  setPolicies(policies: Authorization[]): void {
    this.#policies = policies;
    this.#schedule();
  }

  rebuild(): void {
    const services = this.#services.list();
    const workloads = this.#pods.list().flatMap((p) => workloadOf(p, services, this.cluster) ?? []);
    this.cache.update(
      workloads,
      services.flatMap((s) => serviceOf(s, this.cluster) ?? []),
      this.#policies,
    );
  }

  #schedule(): void {
    if (this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (!this.#stopped) this.rebuild();
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    await Promise.all([this.#pods.stop(), this.#services.stop()]);
  }
}

/** Fresh pod reads for the CA: a certificate request must not race the informer's view. */
export class ApiPodLookup implements PodLookup {
  readonly #core: CoreV1Api;

  constructor(kubeconfig: KubeConfig) {
    this.#core = kubeconfig.makeApiClient(CoreV1Api);
  }

  async get(namespace: string, name: string): Promise<PodInfo | undefined> {
    try {
      return podInfo(await this.#core.readNamespacedPod({ namespace, name }));
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }

  async list(namespace: string): Promise<PodInfo[]> {
    return (await this.#core.listNamespacedPod({ namespace })).items.map(podInfo);
  }
}

function podInfo(p: V1Pod): PodInfo {
  return {
    namespace: p.metadata?.namespace ?? '',
    name: p.metadata?.name ?? '',
    serviceAccount: p.spec?.serviceAccountName || 'default',
    nodeName: p.spec?.nodeName ?? '',
  };
}
