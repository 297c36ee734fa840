/**
 * The workload store: what ztunnel knows about the mesh, indexed the way the data path asks.
 * Sources (the local YAML file today, xDS later) replace or patch it; readers subscribe to 'change'.
 */
import { EventEmitter } from 'node:events';
import { unmapIPv4 } from '../net/ip.js';
import {
  type Authorization,
  type DiscoverySnapshot,
  policyKey,
  type Service,
  serviceKey,
  type Workload,
} from './types.js';

/** A workload backing a service, with the port map it declared for that service. */
export interface Endpoint {
  workload: Workload;
  ports: ReadonlyMap<number, number>;
}

export interface LocalWorkloadKey {
  name: string;
  namespace: string;
  serviceAccount: string;
}

function addrKey(network: string, ip: string): string {
  return `${network}/${unmapIPv4(ip)}`;
}

/** Upserts and removals by key: workload uid, service `namespace/hostname`, policy `namespace/name`. */
export interface StoreDelta {
  workloads?: Workload[];
  services?: Service[];
  policies?: Authorization[];
  removedWorkloads?: string[];
  removedServices?: string[];
  removedPolicies?: string[];
}

export interface WorkloadStoreEvents {
  change: [];
}

export class WorkloadStore extends EventEmitter<WorkloadStoreEvents> {
  #workloads = new Map<string, Workload>();
  #services = new Map<string, Service>();
  #policies = new Map<string, Authorization>();
  #byAddress = new Map<string, Workload>();
  #byVip = new Map<string, Service>();
  #endpoints = new Map<string, Endpoint[]>();
  /** Only workloads on this node are candidates for a ZDS pod (reference §5.3); undefined = any node. */
  readonly node: string | undefined;

  constructor(options: { node?: string } = {}) {
    super();
    this.node = options.node;
  }

  /** Replaces everything at once (the local file is authoritative, as LOCAL_XDS_PATH is upstream). */
  replaceAll(snapshot: DiscoverySnapshot): void {
    this.#workloads = new Map(snapshot.workloads.map((w) => [w.uid, w]));
    this.#services = new Map(snapshot.services.map((s) => [serviceKey(s), s]));
    this.#policies = new Map(snapshot.policies.map((p) => [policyKey(p), p]));
    this.#reindex();
  }

  upsertWorkload(w: Workload): void {
    this.#workloads.set(w.uid, w);
    this.#reindex();
  }

  removeWorkload(uid: string): void {
    if (this.#workloads.delete(uid)) this.#reindex();
  }

  /** Applies one xDS response's worth of changes with a single reindex and 'change' event. */
  apply(delta: StoreDelta): void {
    for (const w of delta.workloads ?? []) this.#workloads.set(w.uid, w);
    for (const sv of delta.services ?? []) this.#services.set(serviceKey(sv), sv);
    for (const p of delta.policies ?? []) this.#policies.set(policyKey(p), p);
    for (const uid of delta.removedWorkloads ?? []) this.#workloads.delete(uid);
    for (const key of delta.removedServices ?? []) this.#services.delete(key);
    for (const key of delta.removedPolicies ?? []) this.#policies.delete(key);
    this.#reindex();
  }

  #reindex(): void {
    this.#byAddress = new Map();
    this.#endpoints = new Map();
    for (const w of this.#workloads.values()) {
      for (const ip of w.workloadIps) this.#byAddress.set(addrKey(w.network, ip), w);
      for (const [svc, ports] of w.services) {
        const list = this.#endpoints.get(svc) ?? [];
        list.push({ workload: w, ports });
        this.#endpoints.set(svc, list);
      }
    }
    this.#byVip = new Map();
    for (const s of this.#services.values()) {
      for (const vip of s.vips) this.#byVip.set(addrKey(vip.network, vip.address), s);
    }
    this.emit('change');
  }

  get workloads(): Workload[] {
    return [...this.#workloads.values()];
  }

  get services(): Service[] {
    return [...this.#services.values()];
  }

  get policies(): Authorization[] {
    return [...this.#policies.values()];
  }

  workloadByUid(uid: string): Workload | undefined {
    return this.#workloads.get(uid);
  }

  workloadByIp(ip: string, network = ''): Workload | undefined {
    return this.#byAddress.get(addrKey(network, ip));
  }

  serviceByVip(ip: string, network = ''): Service | undefined {
    return this.#byVip.get(addrKey(network, ip));
  }

  service(namespace: string, hostname: string): Service | undefined {
    return this.#services.get(`${namespace}/${hostname}`);
  }

  /** Healthy workloads backing `service`. */
  endpoints(service: Service): Endpoint[] {
    return (this.#endpoints.get(serviceKey(service)) ?? []).filter((e) => e.workload.status === 'Healthy');
  }

  /** The workload a ZDS pod stands for: same name, namespace and service account, on this node. */
  findLocalWorkload(key: LocalWorkloadKey): Workload | undefined {
    for (const w of this.#workloads.values()) {
      if (this.node !== undefined && w.node !== this.node) continue;
      if (w.name === key.name && w.namespace === key.namespace && w.serviceAccount === key.serviceAccount)
        return w;
    }
    return undefined;
  }

  /** Policies that apply to a destination workload: its namespace's, global ones and its selected ones. */
  policiesFor(w: Workload): Authorization[] {
    const out: Authorization[] = [];
    for (const p of this.#policies.values()) {
      if (p.scope === 'Global') out.push(p);
      else if (p.scope === 'Namespace' && p.namespace === w.namespace) out.push(p);
      else if (p.scope === 'WorkloadSelector' && w.authorizationPolicies.includes(policyKey(p))) out.push(p);
    }
    return out;
  }
}
