/**
 * Watches pods, services and `security.istio.io/v1` AuthorizationPolicies through @kubernetes/client-node
 * informers (exactly as against a real cluster) and rebuilds the xDS resource cache from them and the
 * policy file. Rebuilds are coalesced: a burst of events costs one rebuild. A failed watch is restarted
 * after a pause, keeping the last state (a cluster without the CRD simply has no cluster policies).
 */
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type Informer as KubeInformer,
  type KubernetesObject,
  makeInformer,
  type ObjectCache,
  type V1Pod,
  type V1Service,
} from '@kubernetes/client-node';
import { type Authorization, policyKey } from '../discovery/types.js';
import { errorMessage } from '../errors.js';
import { logger } from '../runtime/log.js';
import type { PodInfo, PodLookup } from './ca/service.js';
import {
  AUTHORIZATION_POLICY_GROUP,
  AUTHORIZATION_POLICY_PLURAL,
  AUTHORIZATION_POLICY_VERSION,
  type AuthorizationPolicyObject,
  type ConversionResult,
  type ConvertedPolicy,
  convertAuthorizationPolicy,
  selectsWorkload,
} from './xds/authorization-policy.js';
import { type ClusterIdentity, serviceOf, workloadOf } from './xds/cluster-model.js';
import type { ResourceCache } from './xds/resource-cache.js';

const log = logger('ambit::controlplane::kube');
const RESTART_DELAY_MS = 1000;

type Informer<T extends KubernetesObject> = KubeInformer<T> & ObjectCache<T>;
type PolicyObject = KubernetesObject & AuthorizationPolicyObject;
type ConvertedVersion = { version: string; result: ConversionResult };

/** Istio's default meshConfig.rootNamespace: policies there without a selector are mesh-wide. */
export const DEFAULT_ROOT_NAMESPACE = 'istio-system';

export class KubeSource {
  readonly #pods: Informer<V1Pod>;
  readonly #services: Informer<V1Service>;
  readonly #authorizationPolicies: Informer<PolicyObject>;
  readonly #timers = new Set<NodeJS.Timeout>();
  /** The last error logged per watch: a watch failing the same way again is not logged again. */
  readonly #lastError = new Map<string, string>();
  /**
   * `namespace/name` -> the policy's resourceVersion and its conversion: a rebuild (any pod or service
   * change) converts only the versions it has not seen, and each version is logged once.
   */
  #converted = new Map<string, ConvertedVersion>();
  #scheduled = false;
  #stopped = false;
  #filePolicies: Authorization[] = [];

  constructor(
    kubeconfig: KubeConfig,
    readonly cache: ResourceCache,
    readonly cluster: ClusterIdentity,
    readonly rootNamespace = DEFAULT_ROOT_NAMESPACE,
  ) {
    const core = kubeconfig.makeApiClient(CoreV1Api);
    const custom = kubeconfig.makeApiClient(CustomObjectsApi);
    this.#pods = makeInformer<V1Pod>(kubeconfig, '/api/v1/pods', () => core.listPodForAllNamespaces());
    this.#services = makeInformer<V1Service>(kubeconfig, '/api/v1/services', () =>
      core.listServiceForAllNamespaces(),
    );
    const group = AUTHORIZATION_POLICY_GROUP;
    const version = AUTHORIZATION_POLICY_VERSION;
    const plural = AUTHORIZATION_POLICY_PLURAL;
    this.#authorizationPolicies = makeInformer<PolicyObject>(
      kubeconfig,
      `/apis/${group}/${version}/${plural}`,
      () => custom.listClusterCustomObject({ group, version, plural }),
    );
    this.#watch('pods', this.#pods);
    this.#watch('services', this.#services);
    this.#watch(plural, this.#authorizationPolicies);
  }

  #watch<T extends KubernetesObject>(name: string, informer: Informer<T>): void {
    const changed = (): void => {
      this.#lastError.delete(name);
      this.#schedule();
    };
    informer.on('add', changed);
    informer.on('update', changed);
    informer.on('delete', changed);
    informer.on('error', (err) => {
      if (this.#stopped) return;
      const error = errorMessage(err);
      if (this.#lastError.get(name) !== error)
        log.warn('watch failed, restarting', { resource: name, error });
      this.#lastError.set(name, error);
      const t = setTimeout(() => {
        this.#timers.delete(t);
        if (!this.#stopped) informer.start().catch(() => undefined);
      }, RESTART_DELAY_MS);
      this.#timers.add(t);
    });
  }

  /** Resolves once the initial lists are in (or failed, to be retried) and the cache holds them. */
  async start(): Promise<void> {
    await Promise.all([this.#pods.start(), this.#services.start(), this.#authorizationPolicies.start()]);
    this.rebuild();
  }

  /** Policies from the policy file, served beside the cluster's (a cluster policy of the same key wins). */
  setPolicies(policies: Authorization[]): void {
    this.#filePolicies = policies;
    this.#schedule();
  }

  rebuild(): void {
    const services = this.#services.list();
    const cluster = this.#clusterPolicies();
    const selecting = cluster.filter((p) => p.selector !== undefined);
    const workloads = this.#pods.list().flatMap((pod) => {
      const w = workloadOf(pod, services, this.cluster);
      if (!w) return [];
      const target = { namespace: w.namespace, labels: pod.metadata?.labels ?? {} };
      const selected = selecting
        .filter((p) => selectsWorkload(p.authorization.namespace, p.selector!, this.rootNamespace, target))
        .map((p) => policyKey(p.authorization))
        .sort();
      return [{ ...w, authorizationPolicies: selected }];
    });
    const policies = new Map(this.#filePolicies.map((p) => [policyKey(p), p]));
    for (const p of cluster) policies.set(policyKey(p.authorization), p.authorization);
    this.cache.update(
      workloads,
      services.flatMap((s) => serviceOf(s, this.cluster) ?? []),
      [...policies.values()],
    );
  }

  /** The cluster's AuthorizationPolicies as ztunnel can enforce them; what changes is logged once per version. */
  #clusterPolicies(): ConvertedPolicy[] {
    const out: ConvertedPolicy[] = [];
    const converted = new Map<string, ConvertedVersion>();
    for (const obj of this.#authorizationPolicies.list()) {
      const key = `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
      const version = obj.metadata?.resourceVersion ?? '';
      const seen = this.#converted.get(key);
      const fresh = seen?.version !== version;
      const result = fresh || !seen ? convertAuthorizationPolicy(obj, this.rootNamespace) : seen.result;
      converted.set(key, { version, result });
      if (!result.ok) {
        if (fresh) log.warn('authorization policy not applied', { policy: key, reason: result.reason });
        continue;
      }
      if (fresh && result.policy.warning)
        log.warn('authorization policy applied with changes', {
          policy: key,
          warning: result.policy.warning,
        });
      out.push(result.policy);
    }
    this.#converted = converted;
    return out;
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
    await Promise.all([this.#pods.stop(), this.#services.stop(), this.#authorizationPolicies.stop()]);
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
