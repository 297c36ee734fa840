/**
 * The encoded resources the control plane serves, per type URL: name -> (version, Any). A version is a
 * digest of the encoded resource, so the same content always has the same version, also across control
 * plane restarts; that is what lets a reconnecting client's `initial_resource_versions` be compared.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Authorization, Service, Workload } from '../../discovery/types.js';
import { policyKey, serviceKey } from '../../discovery/types.js';
import { toPbAuthorization, toPbService, toPbWorkload } from '../../discovery/xds-convert.js';
import { encode } from '../../xds/codec.js';
import {
  ADDRESS_TYPE_URL,
  AddressSchema,
  AUTHORIZATION_TYPE_URL,
  AuthorizationSchema,
} from '../../xds/messages.js';

export interface CachedResource {
  version: string;
  /** The resource's bytes, to be wrapped in an Any of the type URL. */
  value: Uint8Array;
}

export type TypeUrl = typeof ADDRESS_TYPE_URL | typeof AUTHORIZATION_TYPE_URL;
export const TYPE_URLS: readonly TypeUrl[] = [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL];

export function isTypeUrl(s: string): s is TypeUrl {
  return (TYPE_URLS as readonly string[]).includes(s);
}

function entry(value: Uint8Array): CachedResource {
  return { version: createHash('sha256').update(value).digest('hex').slice(0, 16), value };
}

export interface ResourceCacheEvents {
  /** Type URLs whose resources changed. */
  change: [types: TypeUrl[]];
}

export class ResourceCache extends EventEmitter<ResourceCacheEvents> {
  #byType = new Map<TypeUrl, Map<string, CachedResource>>(TYPE_URLS.map((t) => [t, new Map()]));

  resources(type: TypeUrl): ReadonlyMap<string, CachedResource> {
    return this.#byType.get(type)!;
  }

  /** Replaces everything; emits 'change' with the types whose content differs. */
  update(workloads: Workload[], services: Service[], policies: Authorization[]): void {
    const addresses = new Map<string, CachedResource>();
    for (const w of workloads)
      addresses.set(w.uid, entry(encode(AddressSchema, { workload: toPbWorkload(w) })));
    for (const s of services)
      addresses.set(serviceKey(s), entry(encode(AddressSchema, { service: toPbService(s) })));
    const authz = new Map<string, CachedResource>();
    for (const p of policies)
      authz.set(policyKey(p), entry(encode(AuthorizationSchema, toPbAuthorization(p))));
    const changed: TypeUrl[] = [];
    for (const [type, next] of [
      [ADDRESS_TYPE_URL, addresses],
      [AUTHORIZATION_TYPE_URL, authz],
    ] as const) {
      if (!sameVersions(this.#byType.get(type)!, next)) changed.push(type);
      this.#byType.set(type, next);
    }
    if (changed.length > 0) this.emit('change', changed);
  }
}

function sameVersions(
  a: ReadonlyMap<string, CachedResource>,
  b: ReadonlyMap<string, CachedResource>,
): boolean {
  if (a.size !== b.size) return false;
  for (const [name, r] of a) if (b.get(name)?.version !== r.version) return false;
  return true;
}
