/**
 * Answers for service hostnames from the workload store (ztunnel's DNS `Store`): A records for a
 * service's IPv4 VIPs, AAAA for its IPv6 ones. A name the store does not know is not ours to deny: the
 * caller forwards it upstream, as ztunnel does (so no NXDOMAIN is ever made up here).
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Answer } from 'dns-packet';
import type { WorkloadStore } from '../../discovery/store.js';
import type { Service } from '../../discovery/types.js';
import { aliases } from './names.js';

/** ztunnel's DEFAULT_TTL_SECONDS. */
export const SERVICE_TTL_SECONDS = 30;

export interface LocalAnswer {
  answers: Answer[];
}

function findService(store: WorkloadStore, name: string, namespace: string): Service | undefined {
  let first: Service | undefined;
  for (const service of store.services) {
    if (service.hostname.toLowerCase() !== name || service.vips.length === 0) continue;
    // The same hostname in several namespaces (ServiceEntries): the asking pod's own wins.
    if (service.namespace === namespace) return service;
    first ??= service;
  }
  return first;
}

/**
 * The answer for an A or AAAA question, or undefined when the name is no service the store knows
 * (forward it). A service without an address of the asked family is answered with no records: the
 * name exists, so that is not NXDOMAIN.
 */
export function lookupService(
  store: WorkloadStore,
  question: { name: string; type: 'A' | 'AAAA' },
  client: { namespace: string; network: string },
  clusterDomain: string,
): LocalAnswer | undefined {
  for (const alias of aliases(question.name, client.namespace, clusterDomain)) {
    const service = findService(store, alias.name, client.namespace);
    if (!service) continue;
    const family = question.type === 'A' ? isIPv4 : isIPv6;
    const addresses = service.vips
      .filter((vip) => vip.network === client.network && family(vip.address))
      .map((vip) => vip.address);
    const answers: Answer[] = [];
    let recordName = question.name;
    if (alias.stripped !== undefined) {
      // Found once a search domain was taken off: point the asked name at the shorter one.
      answers.push({ type: 'CNAME', name: question.name, ttl: SERVICE_TTL_SECONDS, data: alias.stripped });
      recordName = alias.stripped;
    }
    if (addresses.length === 0) return { answers: [] };
    for (const address of addresses)
      answers.push({ type: question.type, name: recordName, ttl: SERVICE_TTL_SECONDS, data: address });
    return { answers };
  }
  return undefined;
}
