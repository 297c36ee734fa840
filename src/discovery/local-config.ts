/**
 * The local workload file (`LOCAL_XDS_PATH`): YAML with top-level `workloads`, `services`,
 * `policies` in camelCase, as ztunnel reads it (reference ztunnel.md §5.4). Unknown keys and wrong
 * types are rejected with the path of the offending value, e.g. `workloads[0].protocl`.
 */
import { isIP } from 'node:net';
import { parseDocument } from 'yaml';
import { discoveryError } from './errors.js';
import type {
  Authorization,
  Cidr,
  DiscoverySnapshot,
  GatewayAddress,
  Locality,
  Match,
  NetworkAddress,
  PolicyAction,
  PolicyScope,
  PortMap,
  Rule,
  Service,
  ServiceAccountMatch,
  StringMatch,
  Workload,
} from './types.js';

type Obj = Record<string, unknown>;

class Reader {
  constructor(readonly source: string) {}

  fail(path: string, message: string): never {
    throw discoveryError('ERR_LOCAL_XDS', `${this.source}: ${path || '(top level)'}: ${message}`);
  }

  object(v: unknown, path: string, allowed: readonly string[]): Obj {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(path, 'expected a mapping');
    for (const key of Object.keys(v as Obj)) {
      if (!allowed.includes(key))
        this.fail(path ? `${path}.${key}` : key, `unknown key (known: ${allowed.join(', ')})`);
    }
    return v as Obj;
  }

  list(v: unknown, path: string): unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(path, 'expected a list');
    return v;
  }

  string(v: unknown, path: string, fallback?: string): string {
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.fail(path, 'required');
    }
    if (typeof v !== 'string') this.fail(path, 'expected a string');
    return v;
  }

  bool(v: unknown, path: string, fallback: boolean): boolean {
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') this.fail(path, 'expected true or false');
    return v;
  }

  port(v: unknown, path: string): number {
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535)
      this.fail(path, 'expected a port number');
    return n;
  }

  ip(v: unknown, path: string): string {
    const s = this.string(v, path);
    if (isIP(s) === 0) this.fail(path, `'${s}' is not an IP address`);
    return s;
  }

  oneOf<T extends string>(v: unknown, path: string, values: readonly T[], fallback: T): T {
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'string' || !values.includes(v as T))
      this.fail(path, `expected one of ${values.join(', ')}`);
    return v as T;
  }

  /** `network/ip`, the network part possibly empty. */
  networkAddress(v: unknown, path: string): NetworkAddress {
    const s = this.string(v, path);
    const slash = s.lastIndexOf('/');
    const network = slash >= 0 ? s.slice(0, slash) : '';
    const address = slash >= 0 ? s.slice(slash + 1) : s;
    if (isIP(address) === 0) this.fail(path, `'${s}' is not <network>/<ip>`);
    return { network, address };
  }

  portMap(v: unknown, path: string): PortMap {
    if (v === undefined || v === null) return new Map();
    const o = this.object(v, path, Object.keys((v ?? {}) as Obj));
    const out = new Map<number, number>();
    for (const [k, target] of Object.entries(o))
      out.set(this.port(k, `${path}.${k}`), this.port(target, `${path}.${k}`));
    return out;
  }
}

const WORKLOAD_KEYS = [
  'uid',
  'name',
  'namespace',
  'serviceAccount',
  'trustDomain',
  'workloadIps',
  'protocol',
  'node',
  'network',
  'hostname',
  'clusterId',
  'canonicalName',
  'canonicalRevision',
  'workloadName',
  'workloadType',
  'status',
  'capacity',
  'locality',
  'waypoint',
  'services',
  'authorizationPolicies',
] as const;
const SERVICE_KEYS = [
  'name',
  'namespace',
  'hostname',
  'vips',
  'ports',
  'subjectAltNames',
  'canonical',
  'waypoint',
] as const;
const POLICY_KEYS = ['name', 'namespace', 'scope', 'action', 'dryRun', 'rules'] as const;
const MATCH_KEYS = [
  'namespaces',
  'notNamespaces',
  'principals',
  'notPrincipals',
  'sourceIps',
  'notSourceIps',
  'destinationIps',
  'notDestinationIps',
  'destinationPorts',
  'notDestinationPorts',
  'serviceAccounts',
  'notServiceAccounts',
] as const;

function gateway(r: Reader, v: unknown, path: string): GatewayAddress | undefined {
  if (v === undefined || v === null) return undefined;
  const o = r.object(v, path, ['destination', 'hboneMtlsPort']);
  return {
    destination: r.networkAddress(o['destination'], `${path}.destination`),
    hboneMtlsPort:
      o['hboneMtlsPort'] === undefined ? 15008 : r.port(o['hboneMtlsPort'], `${path}.hboneMtlsPort`),
  };
}

function locality(r: Reader, v: unknown, path: string): Locality | undefined {
  if (v === undefined || v === null) return undefined;
  const o = r.object(v, path, ['region', 'zone', 'subzone']);
  return {
    region: r.string(o['region'], `${path}.region`, ''),
    zone: r.string(o['zone'], `${path}.zone`, ''),
    subzone: r.string(o['subzone'], `${path}.subzone`, ''),
  };
}

function workload(r: Reader, v: unknown, path: string): Workload {
  const o = r.object(v, path, WORKLOAD_KEYS);
  const name = r.string(o['name'], `${path}.name`);
  const namespace = r.string(o['namespace'], `${path}.namespace`);
  const servicesRaw =
    o['services'] === undefined
      ? {}
      : r.object(o['services'], `${path}.services`, Object.keys(o['services'] as Obj));
  const services = new Map<string, PortMap>();
  for (const [key, ports] of Object.entries(servicesRaw)) {
    if (!/^[^/]+\/[^/]+$/.test(key))
      r.fail(`${path}.services.${key}`, "expected a key '<namespace>/<hostname>'");
    services.set(key, r.portMap(ports, `${path}.services.${key}`));
  }
  const capacity = o['capacity'] === undefined ? 1 : o['capacity'];
  if (typeof capacity !== 'number' || !Number.isInteger(capacity) || capacity < 0)
    r.fail(`${path}.capacity`, 'expected a whole number');
  return {
    uid: r.string(o['uid'], `${path}.uid`, `local//v1/Pod/${namespace}/${name}`),
    name,
    namespace,
    serviceAccount: r.string(o['serviceAccount'], `${path}.serviceAccount`, 'default'),
    trustDomain: r.string(o['trustDomain'], `${path}.trustDomain`, 'cluster.local'),
    workloadIps: r
      .list(o['workloadIps'], `${path}.workloadIps`)
      .map((ip, i) => r.ip(ip, `${path}.workloadIps[${i}]`)),
    protocol: r.oneOf(o['protocol'], `${path}.protocol`, ['HBONE', 'TCP'] as const, 'TCP'),
    node: r.string(o['node'], `${path}.node`, ''),
    network: r.string(o['network'], `${path}.network`, ''),
    hostname: r.string(o['hostname'], `${path}.hostname`, ''),
    clusterId: r.string(o['clusterId'], `${path}.clusterId`, 'Kubernetes'),
    canonicalName: r.string(o['canonicalName'], `${path}.canonicalName`, name),
    canonicalRevision: r.string(o['canonicalRevision'], `${path}.canonicalRevision`, 'latest'),
    workloadName: r.string(o['workloadName'], `${path}.workloadName`, name),
    workloadType: r.string(o['workloadType'], `${path}.workloadType`, 'pod'),
    status: r.oneOf(o['status'], `${path}.status`, ['Healthy', 'Unhealthy'] as const, 'Healthy'),
    capacity,
    locality: locality(r, o['locality'], `${path}.locality`),
    waypoint: gateway(r, o['waypoint'], `${path}.waypoint`),
    services,
    authorizationPolicies: r
      .list(o['authorizationPolicies'], `${path}.authorizationPolicies`)
      .map((p, i) => r.string(p, `${path}.authorizationPolicies[${i}]`)),
  };
}

function service(r: Reader, v: unknown, path: string): Service {
  const o = r.object(v, path, SERVICE_KEYS);
  return {
    name: r.string(o['name'], `${path}.name`),
    namespace: r.string(o['namespace'], `${path}.namespace`),
    hostname: r.string(o['hostname'], `${path}.hostname`),
    vips: r.list(o['vips'], `${path}.vips`).map((x, i) => r.networkAddress(x, `${path}.vips[${i}]`)),
    ports: r.portMap(o['ports'], `${path}.ports`),
    subjectAltNames: r
      .list(o['subjectAltNames'], `${path}.subjectAltNames`)
      .map((x, i) => r.string(x, `${path}.subjectAltNames[${i}]`)),
    canonical: r.bool(o['canonical'], `${path}.canonical`, false),
    waypoint: gateway(r, o['waypoint'], `${path}.waypoint`),
  };
}

function stringMatch(r: Reader, v: unknown, path: string): StringMatch {
  const o = r.object(v, path, ['Exact', 'Prefix', 'Suffix', 'Presence']);
  const keys = Object.keys(o);
  if (keys.length !== 1) r.fail(path, 'expected exactly one of Exact, Prefix, Suffix, Presence');
  if ('Exact' in o) return { exact: r.string(o['Exact'], `${path}.Exact`) };
  if ('Prefix' in o) return { prefix: r.string(o['Prefix'], `${path}.Prefix`) };
  if ('Suffix' in o) return { suffix: r.string(o['Suffix'], `${path}.Suffix`) };
  return { presence: true };
}

function cidr(r: Reader, v: unknown, path: string): Cidr {
  const s = r.string(v, path);
  const [address = '', len] = s.split('/');
  const family = isIP(address);
  if (family === 0) r.fail(path, `'${s}' is not an IP or CIDR`);
  const max = family === 4 ? 32 : 128;
  const length = len === undefined ? max : Number(len);
  if (!Number.isInteger(length) || length < 0 || length > max)
    r.fail(path, `'${s}' has an invalid prefix length`);
  return { address, length };
}

function serviceAccountMatch(r: Reader, v: unknown, path: string): ServiceAccountMatch {
  const o = r.object(v, path, ['namespace', 'serviceAccount']);
  return {
    namespace: r.string(o['namespace'], `${path}.namespace`),
    serviceAccount: r.string(o['serviceAccount'], `${path}.serviceAccount`),
  };
}

function match(r: Reader, v: unknown, path: string): Match {
  const o = r.object(v, path, MATCH_KEYS);
  const strings = (k: string) =>
    r.list(o[k], `${path}.${k}`).map((x, i) => stringMatch(r, x, `${path}.${k}[${i}]`));
  const cidrs = (k: string) => r.list(o[k], `${path}.${k}`).map((x, i) => cidr(r, x, `${path}.${k}[${i}]`));
  const ports = (k: string) => r.list(o[k], `${path}.${k}`).map((x, i) => r.port(x, `${path}.${k}[${i}]`));
  const sas = (k: string) =>
    r.list(o[k], `${path}.${k}`).map((x, i) => serviceAccountMatch(r, x, `${path}.${k}[${i}]`));
  return {
    namespaces: strings('namespaces'),
    notNamespaces: strings('notNamespaces'),
    principals: strings('principals'),
    notPrincipals: strings('notPrincipals'),
    sourceIps: cidrs('sourceIps'),
    notSourceIps: cidrs('notSourceIps'),
    destinationIps: cidrs('destinationIps'),
    notDestinationIps: cidrs('notDestinationIps'),
    destinationPorts: ports('destinationPorts'),
    notDestinationPorts: ports('notDestinationPorts'),
    serviceAccounts: sas('serviceAccounts'),
    notServiceAccounts: sas('notServiceAccounts'),
  };
}

function policy(r: Reader, v: unknown, path: string): Authorization {
  const o = r.object(v, path, POLICY_KEYS);
  const rules: Rule[] = r
    .list(o['rules'], `${path}.rules`)
    .map((rule, i) =>
      r
        .list(rule, `${path}.rules[${i}]`)
        .map((clause, j) =>
          r
            .list(clause, `${path}.rules[${i}][${j}]`)
            .map((m, k) => match(r, m, `${path}.rules[${i}][${j}][${k}]`)),
        ),
    );
  return {
    name: r.string(o['name'], `${path}.name`),
    namespace: r.string(o['namespace'], `${path}.namespace`, ''),
    scope: r.oneOf<PolicyScope>(
      o['scope'],
      `${path}.scope`,
      ['Global', 'Namespace', 'WorkloadSelector'],
      'WorkloadSelector',
    ),
    action: r.oneOf<PolicyAction>(o['action'], `${path}.action`, ['Allow', 'Deny'], 'Allow'),
    dryRun: r.bool(o['dryRun'], `${path}.dryRun`, false),
    rules,
  };
}

/** Parses and validates the file's text; throws AmbitError ERR_LOCAL_XDS naming the bad path. */
export function parseLocalConfig(text: string, source = 'local config'): DiscoverySnapshot {
  const r = new Reader(source);
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    r.fail(e.linePos?.[0] ? `line ${e.linePos[0].line}` : '', `invalid YAML: ${e.message.split('\n')[0]}`);
  }
  const root = doc.toJS() ?? {};
  const o = r.object(root, '', ['workloads', 'services', 'policies']);
  const snapshot: DiscoverySnapshot = {
    workloads: r.list(o['workloads'], 'workloads').map((w, i) => workload(r, w, `workloads[${i}]`)),
    services: r.list(o['services'], 'services').map((s, i) => service(r, s, `services[${i}]`)),
    policies: r.list(o['policies'], 'policies').map((p, i) => policy(r, p, `policies[${i}]`)),
  };
  const uids = new Set<string>();
  snapshot.workloads.forEach((w, i) => {
    if (uids.has(w.uid)) r.fail(`workloads[${i}].uid`, `duplicate uid '${w.uid}'`);
    uids.add(w.uid);
  });
  return snapshot;
}
