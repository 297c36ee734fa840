/**
 * The object store: every object of every served resource, one global resourceVersion counter,
 * and a bounded history of changes that watches replay from. All mutations are synchronous, so
 * resourceVersions are unique and strictly increasing without locks.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { CustomTypes } from './custom-resources.js';
import { applyCreateDefaults, applyWriteStrategy, checkShape, type KObject, validate } from './objects.js';
import { applyPatch, type Json, type PatchType } from './patch.js';
import { apiVersionOf, CRD_RESOURCE, findResource, RESOURCES, type ResourceType } from './resources.js';
import type { ServiceFamily } from './service-ips.js';
import { alreadyExists, conflict, expired, invalid, notFound, STALE_OBJECT, StatusError } from './status.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoredEvent {
  rv: number;
  resource: ResourceType;
  type: EventType;
  /** The object after the change (for DELETED: as it was when deleted). */
  object: KObject;
  /** The object before the change, so selector watches can turn it into ADDED/DELETED. */
  previous: KObject | undefined;
}

export interface StoreSnapshot {
  resourceVersion: number;
  objects: KObject[];
}

export interface DeleteOptions {
  preconditions?: { uid?: string; resourceVersion?: string };
  /** 0 deletes at once; unset: the object's default (a pod's spec.terminationGracePeriodSeconds). */
  gracePeriodSeconds?: number;
}

/** Namespaces a fresh cluster has. */
const BUILTIN_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];

const keyOf = (r: ResourceType): string => `${r.group}/${r.plural}`;
const objKey = (namespace: string | undefined, name: string): string => `${namespace ?? ''}/${name}`;

export class Store {
  private rv = 0;
  private readonly objects = new Map<string, Map<string, KObject>>();
  private readonly history: StoredEvent[] = [];
  /** Watches from a resourceVersion below this can no longer be served (410). */
  private oldestReplayable = 0;
  private readonly listeners = new Set<(e: StoredEvent) => void>();
  /** The resources the stored CustomResourceDefinitions add. */
  private readonly custom = new CustomTypes();
  /** The cluster's service IP families, primary first (kube-apiserver's --service-cluster-ip-range). */
  serviceFamilies: readonly ServiceFamily[] = ['IPv4'];

  constructor(
    private readonly historySize: number,
    snapshot?: StoreSnapshot,
  ) {
    for (const r of RESOURCES) this.objects.set(keyOf(r), new Map());
    if (snapshot) {
      this.rv = snapshot.resourceVersion;
      // Built-in objects (CRDs among them) first: they say which custom objects can be read back.
      const later: KObject[] = [];
      for (const obj of snapshot.objects) {
        const r = resourceForObject(obj, RESOURCES);
        if (r) this.bucket(r).set(objKey(obj.metadata.namespace, obj.metadata.name), obj);
        else later.push(obj);
      }
      this.refreshCustomTypes();
      for (const obj of later) {
        const r = resourceForObject(obj, this.custom.types);
        if (r) this.bucket(r).set(objKey(obj.metadata.namespace, obj.metadata.name), obj);
      }
      // History does not survive a restart: older watches must relist, as after an etcd compaction.
      this.oldestReplayable = this.rv;
    } else {
      for (const name of BUILTIN_NAMESPACES)
        this.create(findResource('', 'v1', 'namespaces')!, undefined, { metadata: { name } });
    }
  }

  get resourceVersion(): number {
    return this.rv;
  }

  /** Every resource served now: the built-in ones and those of the stored CRDs. */
  resources(): ResourceType[] {
    return [...RESOURCES, ...this.custom.types];
  }

  findResource(group: string, version: string, plural: string): ResourceType | undefined {
    return this.resources().find((r) => r.group === group && r.version === version && r.plural === plural);
  }

  private refreshCustomTypes(): void {
    this.custom.update([...this.bucket(CRD_RESOURCE).values()], RESOURCES);
  }

  snapshot(): StoreSnapshot {
    const objects: KObject[] = [];
    for (const bucket of this.objects.values()) objects.push(...bucket.values());
    return { resourceVersion: this.rv, objects };
  }

  subscribe(fn: (e: StoredEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Events after `since` for this resource, or a 410 when the window no longer reaches back that far. */
  eventsSince(r: ResourceType, since: number, requested: string): StoredEvent[] {
    if (since < this.oldestReplayable) throw expired(requested, this.oldestReplayable + 1);
    return this.history.filter((e) => e.rv > since && e.resource === r);
  }

  list(r: ResourceType, namespace: string | undefined): KObject[] {
    const out: KObject[] = [];
    for (const obj of this.bucket(r).values())
      if (!namespace || obj.metadata.namespace === namespace) out.push(obj);
    return out.sort((a, b) =>
      objKey(a.metadata.namespace, a.metadata.name).localeCompare(
        objKey(b.metadata.namespace, b.metadata.name),
      ),
    );
  }

  get(r: ResourceType, namespace: string | undefined, name: string): KObject {
    const obj = this.bucket(r).get(objKey(namespace, name));
    if (!obj) throw notFound({ group: r.group, plural: r.plural, name });
    return obj;
  }

  find(r: ResourceType, namespace: string | undefined, name: string): KObject | undefined {
    return this.bucket(r).get(objKey(namespace, name));
  }

  create(r: ResourceType, namespace: string | undefined, body: unknown): KObject {
    const obj = structuredClone(checkShape(r, body));
    this.checkNamespace(r, namespace, obj);
    const meta = obj.metadata;
    if (!meta.name && typeof meta.generateName === 'string' && meta.generateName !== '')
      meta.name = this.generateName(r, namespace, meta.generateName);
    validate(r, obj);
    if (this.bucket(r).has(objKey(namespace, meta.name)))
      throw alreadyExists({ group: r.group, plural: r.plural, name: meta.name });
    const {
      resourceVersion,
      uid,
      creationTimestamp,
      deletionTimestamp,
      deletionGracePeriodSeconds,
      generation,
      namespace: _ns,
      ...rest
    } = meta;
    obj.metadata = {
      ...rest,
      name: meta.name,
      ...(namespace ? { namespace } : {}),
      uid: randomUUID(),
      resourceVersion: '',
      generation: 1,
      creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    };
    applyCreateDefaults(r, obj, this.clusterIps(), this.serviceFamilies);
    this.commit(r, 'ADDED', obj, undefined);
    if (r === CRD_RESOURCE) this.refreshCustomTypes();
    if (r.plural === 'namespaces') {
      // Real clusters' service-account controller does this; pods use `default` to get tokens.
      const sa = findResource('', 'v1', 'serviceaccounts')!;
      this.create(sa, meta.name, { metadata: { name: 'default' } });
    }
    return obj;
  }

  update(
    r: ResourceType,
    namespace: string | undefined,
    name: string,
    body: unknown,
    subresource?: 'status',
  ): KObject {
    const old = this.get(r, namespace, name);
    const next = structuredClone(checkShape(r, body));
    if (next.metadata.name !== undefined && next.metadata.name !== name)
      throw new StatusError(
        'BadRequest',
        `the name of the object (${next.metadata.name}) does not match the name on the URL (${name})`,
      );
    next.metadata.name = name;
    this.checkNamespace(r, namespace, next);
    return this.replace(r, old, next, subresource);
  }

  patch(
    r: ResourceType,
    namespace: string | undefined,
    name: string,
    type: PatchType,
    patch: Json,
    subresource?: 'status',
  ): KObject {
    const old = this.get(r, namespace, name);
    const patched = applyPatch(type, structuredClone(old) as unknown as Json, patch);
    const next = checkShape(r, patched);
    if (next.metadata.name !== name || next.metadata.namespace !== old.metadata.namespace)
      throw invalid(r.kind, r.group, name, [
        { reason: 'FieldValueInvalid', field: 'metadata.name', message: 'Invalid value: field is immutable' },
      ]);
    return this.replace(r, old, next, subresource);
  }

  delete(r: ResourceType, namespace: string | undefined, name: string, options: DeleteOptions = {}): KObject {
    const old = this.get(r, namespace, name);
    const pre = options.preconditions;
    const target = { group: r.group, plural: r.plural, name };
    if (pre?.uid && pre.uid !== old.metadata.uid)
      throw conflict(
        target,
        `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid}`,
      );
    if (pre?.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion)
      throw conflict(
        target,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion}`,
      );
    if (r === CRD_RESOURCE) {
      // As the apiextensions finalizer does, but at once: the custom objects go, then their definition.
      const type = this.custom.ofCrd(name);
      if (type) for (const obj of this.list(type, undefined)) this.removeObject(type, obj);
      const gone = this.removeObject(r, old);
      this.refreshCustomTypes();
      return gone;
    }
    if (r.plural === 'namespaces') {
      // No namespace controller here: the namespace's objects go at once, each with its own event.
      for (const child of this.resources().filter((x) => x.namespaced))
        for (const obj of this.list(child, name)) this.removeObject(child, obj);
      const gone: KObject = { ...old, status: { phase: 'Terminating' } };
      this.removeObject(r, gone);
      return gone;
    }
    if (r.plural === 'pods') {
      const grace = podGracePeriod(old, options.gracePeriodSeconds);
      if (grace > 0) return this.markTerminating(r, old, grace);
    }
    return this.removeObject(r, old);
  }

  /**
   * Graceful deletion (apiserver rest.BeforeDelete): the object stays with deletionTimestamp = now +
   * grace and deletionGracePeriodSeconds, for its kubelet to stop it and then delete it with grace 0.
   * A second DELETE may only shorten the period, moving the deadline forward by the difference.
   */
  private markTerminating(r: ResourceType, old: KObject, grace: number): KObject {
    const meta = old.metadata;
    const current = meta.deletionGracePeriodSeconds;
    let deadline: number;
    if (meta.deletionTimestamp !== undefined && current !== undefined) {
      if (grace >= current) return old;
      deadline = Date.parse(meta.deletionTimestamp) - (current - grace) * 1000;
    } else {
      deadline = Math.floor(Date.now() / 1000) * 1000 + grace * 1000;
    }
    const next: KObject = {
      ...old,
      metadata: {
        ...meta,
        deletionTimestamp: new Date(deadline).toISOString().replace(/\.\d+Z$/, 'Z'),
        deletionGracePeriodSeconds: grace,
        generation: (meta.generation ?? 1) + 1,
      },
    };
    this.commit(r, 'MODIFIED', next, old);
    return next;
  }

  private removeObject(r: ResourceType, obj: KObject): KObject {
    this.bucket(r).delete(objKey(obj.metadata.namespace, obj.metadata.name));
    const gone: KObject = { ...obj, metadata: { ...obj.metadata } };
    this.commit(r, 'DELETED', gone, obj);
    return gone;
  }

  private replace(r: ResourceType, old: KObject, next: KObject, subresource: 'status' | undefined): KObject {
    const target = { group: r.group, plural: r.plural, name: old.metadata.name };
    const rv = next.metadata.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== old.metadata.resourceVersion)
      throw conflict(target, STALE_OBJECT);
    const merged = applyWriteStrategy(r, old, next, subresource);
    validate(r, merged);
    merged.metadata.resourceVersion = old.metadata.resourceVersion;
    // A write that changes nothing is not an event, as in Kubernetes.
    if (JSON.stringify(merged) === JSON.stringify(old)) return old;
    this.commit(r, 'MODIFIED', merged, old);
    if (r === CRD_RESOURCE) this.refreshCustomTypes();
    return merged;
  }

  private commit(r: ResourceType, type: EventType, obj: KObject, previous: KObject | undefined): void {
    this.rv += 1;
    obj.metadata.resourceVersion = String(this.rv);
    if (type !== 'DELETED') this.bucket(r).set(objKey(obj.metadata.namespace, obj.metadata.name), obj);
    const event: StoredEvent = { rv: this.rv, resource: r, type, object: obj, previous };
    this.history.push(event);
    while (this.history.length > this.historySize) this.oldestReplayable = this.history.shift()!.rv;
    for (const fn of this.listeners) fn(event);
  }

  private checkNamespace(r: ResourceType, namespace: string | undefined, obj: KObject): void {
    const bodyNs = obj.metadata.namespace;
    if (!r.namespaced) {
      if (bodyNs) delete obj.metadata.namespace;
      return;
    }
    if (bodyNs !== undefined && bodyNs !== '' && bodyNs !== namespace)
      throw new StatusError(
        'BadRequest',
        'the namespace of the provided object does not match the namespace sent on the request',
      );
    const nsRes = findResource('', 'v1', 'namespaces')!;
    if (!namespace || !this.find(nsRes, undefined, namespace))
      throw notFound({ group: '', plural: 'namespaces', name: namespace ?? '' });
  }

  private generateName(r: ResourceType, namespace: string | undefined, prefix: string): string {
    for (let i = 0; i < 8; i++) {
      const candidate = `${prefix}${randomBytes(4).readUInt32BE(0).toString(36).slice(0, 5).padStart(5, 'x')}`;
      if (!this.bucket(r).has(objKey(namespace, candidate))) return candidate;
    }
    throw alreadyExists({ group: r.group, plural: r.plural, name: prefix });
  }

  private clusterIps(): Set<string> {
    const used = new Set<string>();
    for (const svc of this.bucket(findResource('', 'v1', 'services')!).values()) {
      const ip = svc.spec?.['clusterIP'];
      if (typeof ip === 'string') used.add(ip);
      const ips = svc.spec?.['clusterIPs'];
      if (Array.isArray(ips)) for (const a of ips) if (typeof a === 'string') used.add(a);
    }
    return used;
  }

  private bucket(r: ResourceType): Map<string, KObject> {
    let bucket = this.objects.get(keyOf(r));
    if (!bucket) {
      bucket = new Map();
      this.objects.set(keyOf(r), bucket);
    }
    return bucket;
  }
}

export function resourceForObject(obj: KObject, among: readonly ResourceType[]): ResourceType | undefined {
  return among.find((r) => r.kind === obj.kind && apiVersionOf(r) === obj.apiVersion);
}

/**
 * The grace period of a pod's deletion (pod strategy CheckGracefulDelete): the one asked for, else
 * the pod's spec.terminationGracePeriodSeconds; 0 (delete at once) when no node runs the pod or it
 * has finished, since nothing is left to stop.
 */
function podGracePeriod(pod: KObject, requested: number | undefined): number {
  const spec = pod.spec ?? {};
  const fromSpec = spec['terminationGracePeriodSeconds'];
  const grace = requested ?? (typeof fromSpec === 'number' ? fromSpec : 30);
  const phase = pod.status?.['phase'];
  if (!spec['nodeName'] || phase === 'Succeeded' || phase === 'Failed') return 0;
  return Math.max(0, grace);
}
