/**
 * Between ambit's discovery model (src/discovery/types.ts) and the wire messages of istio.workload and
 * istio.security. The control plane encodes with `toPb*`; the xDS client decodes with `fromPb*`, which
 * throws ERR_XDS_RESOURCE on values ztunnel would reject (bad IPs, unknown enums, LEGACY_ISTIO_MTLS).
 */
import { isIP } from 'node:net';
import type { AmbitError } from '../errors.js';
import {
  ACTIONS,
  type PbAuthorization,
  type PbCidr,
  type PbGatewayAddress,
  type PbMatch,
  type PbNetworkAddress,
  type PbPort,
  type PbService,
  type PbStringMatch,
  type PbWorkload,
  SCOPES,
  TUNNEL_HBONE,
  TUNNEL_NONE,
  WORKLOAD_TYPES,
} from '../xds/messages.js';
import { discoveryError } from './errors.js';
import type {
  Authorization,
  Cidr,
  GatewayAddress,
  Match,
  NetworkAddress,
  PortMap,
  Service,
  StringMatch,
  Workload,
} from './types.js';

export const XDS_RESOURCE_INVALID = 'ERR_XDS_RESOURCE';

function invalid(what: string, why: string): AmbitError {
  return discoveryError(XDS_RESOURCE_INVALID, `${what}: ${why}`);
}

export function ipToBytes(ip: string): Uint8Array {
  const family = isIP(ip);
  if (family === 4) return Uint8Array.from(ip.split('.').map(Number));
  if (family !== 6) throw invalid('address', `'${ip}' is not an IP address`);
  const [head = '', tail] = ip.split('::');
  const parse = (s: string): number[] => {
    if (s === '') return [];
    const groups = s.split(':');
    const last = groups[groups.length - 1]!;
    if (last.includes('.')) {
      const v4 = ipToBytes(last);
      groups.splice(-1, 1, ((v4[0]! << 8) | v4[1]!).toString(16), ((v4[2]! << 8) | v4[3]!).toString(16));
    }
    return groups.map((g) => Number.parseInt(g, 16));
  };
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  const words = [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 0xff;
  });
  return out;
}

export function bytesToIp(bytes: Uint8Array, what = 'address'): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) throw invalid(what, `an IP address is 4 or 16 bytes, got ${bytes.length}`);
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // The URL parser prints IPv6 in its canonical compressed form (RFC 5952).
  return new URL(`http://[${words.join(':')}]`).hostname.slice(1, -1);
}

function toPbNetworkAddress(a: NetworkAddress): PbNetworkAddress {
  return { network: a.network, address: ipToBytes(a.address) };
}

function fromPbNetworkAddress(a: PbNetworkAddress, what: string): NetworkAddress {
  return { network: a.network, address: bytesToIp(a.address, what) };
}

function toPbGateway(g: GatewayAddress | undefined): PbGatewayAddress | undefined {
  return g && { address: toPbNetworkAddress(g.destination), hboneMtlsPort: g.hboneMtlsPort };
}

function fromPbGateway(g: PbGatewayAddress | undefined, what: string): GatewayAddress | undefined {
  if (!g) return undefined;
  if (!g.address) throw invalid(what, 'only address waypoints are supported, not hostnames');
  return { destination: fromPbNetworkAddress(g.address, what), hboneMtlsPort: g.hboneMtlsPort };
}

function toPbPorts(ports: PortMap): PbPort[] {
  return [...ports].map(([servicePort, targetPort]) => ({ servicePort, targetPort }));
}

function fromPbPorts(ports: PbPort[]): PortMap {
  return new Map(ports.map((p) => [p.servicePort, p.targetPort]));
}

export function toPbWorkload(w: Workload): PbWorkload {
  const type = WORKLOAD_TYPES.indexOf(w.workloadType.toLowerCase() as (typeof WORKLOAD_TYPES)[number]);
  return {
    uid: w.uid,
    name: w.name,
    namespace: w.namespace,
    addresses: w.workloadIps.map(ipToBytes),
    hostname: w.hostname,
    network: w.network,
    tunnelProtocol: w.protocol === 'HBONE' ? TUNNEL_HBONE : TUNNEL_NONE,
    trustDomain: w.trustDomain,
    serviceAccount: w.serviceAccount,
    waypoint: toPbGateway(w.waypoint),
    node: w.node,
    canonicalName: w.canonicalName,
    canonicalRevision: w.canonicalRevision,
    workloadType: Math.max(type, 0),
    workloadName: w.workloadName,
    services: Object.fromEntries([...w.services].map(([k, ports]) => [k, { ports: toPbPorts(ports) }])),
    authorizationPolicies: w.authorizationPolicies,
    status: w.status === 'Healthy' ? 0 : 1,
    clusterId: w.clusterId,
    locality: w.locality,
    capacity: w.capacity === 1 ? undefined : { value: w.capacity },
  };
}

export function fromPbWorkload(p: PbWorkload): Workload {
  const what = `workload ${p.uid || '(no uid)'}`;
  if (p.uid === '') throw invalid(what, 'uid is empty');
  if (p.tunnelProtocol !== TUNNEL_NONE && p.tunnelProtocol !== TUNNEL_HBONE)
    throw invalid(what, `unsupported tunnel_protocol ${p.tunnelProtocol}`);
  if (p.status !== 0 && p.status !== 1) throw invalid(what, `unknown status ${p.status}`);
  return {
    uid: p.uid,
    name: p.name,
    namespace: p.namespace,
    serviceAccount: p.serviceAccount === '' ? 'default' : p.serviceAccount,
    trustDomain: p.trustDomain === '' ? 'cluster.local' : p.trustDomain,
    workloadIps: p.addresses.map((a) => bytesToIp(a, what)),
    protocol: p.tunnelProtocol === TUNNEL_HBONE ? 'HBONE' : 'TCP',
    node: p.node,
    network: p.network,
    hostname: p.hostname,
    clusterId: p.clusterId,
    canonicalName: p.canonicalName,
    canonicalRevision: p.canonicalRevision,
    workloadName: p.workloadName,
    workloadType: WORKLOAD_TYPES[p.workloadType] ?? 'deployment',
    status: p.status === 0 ? 'Healthy' : 'Unhealthy',
    capacity: p.capacity ? p.capacity.value : 1,
    locality: p.locality,
    waypoint: fromPbGateway(p.waypoint, what),
    services: new Map(Object.entries(p.services).map(([k, v]) => [k, fromPbPorts(v.ports)])),
    authorizationPolicies: p.authorizationPolicies,
  };
}

export function toPbService(s: Service): PbService {
  return {
    name: s.name,
    namespace: s.namespace,
    hostname: s.hostname,
    addresses: s.vips.map(toPbNetworkAddress),
    ports: toPbPorts(s.ports),
    subjectAltNames: s.subjectAltNames,
    waypoint: toPbGateway(s.waypoint),
    canonical: s.canonical,
  };
}

export function fromPbService(p: PbService): Service {
  const what = `service ${p.namespace}/${p.hostname}`;
  if (p.hostname === '') throw invalid(what, 'hostname is empty');
  return {
    name: p.name,
    namespace: p.namespace,
    hostname: p.hostname,
    vips: p.addresses.map((a) => fromPbNetworkAddress(a, what)),
    ports: fromPbPorts(p.ports),
    subjectAltNames: p.subjectAltNames,
    canonical: p.canonical,
    waypoint: fromPbGateway(p.waypoint, what),
  };
}

function toPbStringMatch(m: StringMatch): PbStringMatch {
  if ('exact' in m) return { exact: m.exact };
  if ('prefix' in m) return { prefix: m.prefix };
  if ('suffix' in m) return { suffix: m.suffix };
  return { presence: {} };
}

function fromPbStringMatch(m: PbStringMatch, what: string): StringMatch {
  if (m.exact !== undefined) return { exact: m.exact };
  if (m.prefix !== undefined) return { prefix: m.prefix };
  if (m.suffix !== undefined) return { suffix: m.suffix };
  if (m.presence !== undefined) return { presence: true };
  throw invalid(what, 'a string match sets none of exact, prefix, suffix, presence');
}

const toPbCidr = (c: Cidr): PbCidr => ({ address: ipToBytes(c.address), length: c.length });

function fromPbCidr(c: PbCidr, what: string): Cidr {
  const address = bytesToIp(c.address, what);
  if (c.length > c.address.length * 8)
    throw invalid(what, `prefix length ${c.length} too long for ${address}`);
  return { address, length: c.length };
}

function toPbMatch(m: Match): PbMatch {
  return {
    namespaces: m.namespaces.map(toPbStringMatch),
    notNamespaces: m.notNamespaces.map(toPbStringMatch),
    principals: m.principals.map(toPbStringMatch),
    notPrincipals: m.notPrincipals.map(toPbStringMatch),
    sourceIps: m.sourceIps.map(toPbCidr),
    notSourceIps: m.notSourceIps.map(toPbCidr),
    destinationIps: m.destinationIps.map(toPbCidr),
    notDestinationIps: m.notDestinationIps.map(toPbCidr),
    destinationPorts: m.destinationPorts,
    notDestinationPorts: m.notDestinationPorts,
    serviceAccounts: m.serviceAccounts,
    notServiceAccounts: m.notServiceAccounts,
  };
}

function fromPbMatch(m: PbMatch, what: string): Match {
  const strings = (l: PbStringMatch[]) => l.map((x) => fromPbStringMatch(x, what));
  const cidrs = (l: PbCidr[]) => l.map((x) => fromPbCidr(x, what));
  const ports = (l: number[]) => {
    for (const p of l) if (p > 65535) throw invalid(what, `port ${p} out of range`);
    return l;
  };
  return {
    namespaces: strings(m.namespaces),
    notNamespaces: strings(m.notNamespaces),
    principals: strings(m.principals),
    notPrincipals: strings(m.notPrincipals),
    sourceIps: cidrs(m.sourceIps),
    notSourceIps: cidrs(m.notSourceIps),
    destinationIps: cidrs(m.destinationIps),
    notDestinationIps: cidrs(m.notDestinationIps),
    destinationPorts: ports(m.destinationPorts),
    notDestinationPorts: ports(m.notDestinationPorts),
    serviceAccounts: m.serviceAccounts,
    notServiceAccounts: m.notServiceAccounts,
  };
}

export function toPbAuthorization(a: Authorization): PbAuthorization {
  return {
    name: a.name,
    namespace: a.namespace,
    scope: SCOPES.indexOf(a.scope),
    action: ACTIONS.indexOf(a.action),
    rules: a.rules.map((rule) => ({ clauses: rule.map((clause) => ({ matches: clause.map(toPbMatch) })) })),
    dryRun: a.dryRun,
  };
}

export function fromPbAuthorization(p: PbAuthorization): Authorization {
  const what = `policy ${p.namespace}/${p.name}`;
  const scope = SCOPES[p.scope];
  const action = ACTIONS[p.action];
  if (!scope) throw invalid(what, `unknown scope ${p.scope}`);
  if (!action) throw invalid(what, `unknown action ${p.action}`);
  return {
    name: p.name,
    namespace: p.namespace,
    scope,
    action,
    dryRun: p.dryRun,
    rules: p.rules.map((r) => r.clauses.map((c) => c.matches.map((m) => fromPbMatch(m, what)))),
  };
}
