/**
 * Outbound route selection (reference ztunnel.md §3.2 step 3, without waypoints and multi-network):
 * a service VIP picks a healthy endpoint; a workload IP goes to that workload; anything else is
 * passthrough. HBONE workloads are reached on their :15008, TCP ones directly.
 */
import type { Endpoint, WorkloadStore } from '../../discovery/store.js';
import type { Service, Workload } from '../../discovery/types.js';
import { INBOUND_HBONE_PORT } from '../../node/contract.js';

export type OutboundRoute =
  | { kind: 'passthrough'; host: string; port: number }
  | { kind: 'direct'; host: string; port: number; workload: Workload; service?: Service }
  | {
      kind: 'hbone';
      /** The peer's HBONE listener. */
      host: string;
      port: number;
      /** `ip:port` of the application inside the peer, sent as :authority. */
      targetHost: string;
      targetPort: number;
      workload: Workload;
      service?: Service;
      /** SPIFFE ids the peer's certificate may present. */
      expectedIdentities: string[];
    }
  | { kind: 'reject'; reason: string };

export function spiffeIdOf(w: Workload): string {
  return `spiffe://${w.trustDomain}/ns/${w.namespace}/sa/${w.serviceAccount}`;
}

/** Weighted random choice by capacity (default 1), as ztunnel load-balances endpoints. */
function pickEndpoint(endpoints: Endpoint[], random: () => number): Endpoint | undefined {
  const total = endpoints.reduce((n, e) => n + Math.max(0, e.workload.capacity), 0);
  if (endpoints.length === 0) return undefined;
  if (total === 0) return endpoints[Math.floor(random() * endpoints.length)];
  let r = random() * total;
  for (const e of endpoints) {
    r -= Math.max(0, e.workload.capacity);
    if (r < 0) return e;
  }
  return endpoints[endpoints.length - 1];
}

function targetPortFor(service: Service, endpoint: Endpoint, servicePort: number): number | undefined {
  const fromEndpoint = endpoint.ports.get(servicePort);
  if (fromEndpoint !== undefined) return fromEndpoint || servicePort;
  const fromService = service.ports.get(servicePort);
  if (fromService !== undefined) return fromService || servicePort;
  return undefined;
}

function toWorkload(w: Workload, address: string, port: number, service: Service | undefined): OutboundRoute {
  if (w.protocol === 'HBONE') {
    const expected = new Set<string>(service?.subjectAltNames ?? []);
    expected.add(spiffeIdOf(w));
    return {
      kind: 'hbone',
      host: address,
      port: INBOUND_HBONE_PORT,
      targetHost: address,
      targetPort: port,
      workload: w,
      service,
      expectedIdentities: [...expected],
    };
  }
  return { kind: 'direct', host: address, port, workload: w, service };
}

function sameFamily(a: string, b: string): boolean {
  return a.includes(':') === b.includes(':');
}

export function selectRoute(
  store: WorkloadStore,
  dst: { address: string; port: number },
  random: () => number = Math.random,
): OutboundRoute {
  const service = store.serviceByVip(dst.address);
  if (service) {
    const endpoint = pickEndpoint(store.endpoints(service), random);
    const targetPort = endpoint ? targetPortFor(service, endpoint, dst.port) : undefined;
    if (!endpoint || targetPort === undefined) return { kind: 'reject', reason: 'no healthy upstream' };
    const ips = endpoint.workload.workloadIps;
    const address = ips.find((ip) => sameFamily(ip, dst.address)) ?? ips[0];
    if (!address) return { kind: 'reject', reason: 'no healthy upstream' };
    return toWorkload(endpoint.workload, address, targetPort, service);
  }
  const workload = store.workloadByIp(dst.address);
  if (!workload) return { kind: 'passthrough', host: dst.address, port: dst.port };
  return toWorkload(workload, dst.address, dst.port, undefined);
}
