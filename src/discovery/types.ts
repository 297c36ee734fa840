/**
 * The workload-discovery model ztunnel routes by: workloads, services and L4 authorization policies.
 * Field names are the camelCase of Istio's `istio.workload` / `istio.security` messages, so the local
 * YAML file and the xDS source (a later issue) fill the same structures.
 */

export type TunnelProtocol = 'HBONE' | 'TCP';
export type WorkloadStatus = 'Healthy' | 'Unhealthy';

/** `network/ip`; the network may be empty (`/10.0.0.1`). */
export interface NetworkAddress {
  network: string;
  address: string;
}

export interface GatewayAddress {
  destination: NetworkAddress;
  hboneMtlsPort: number;
}

export interface Locality {
  region: string;
  zone: string;
  subzone: string;
}

/** servicePort -> targetPort (0 = same as the service port). */
export type PortMap = ReadonlyMap<number, number>;

export interface Workload {
  uid: string;
  name: string;
  namespace: string;
  serviceAccount: string;
  trustDomain: string;
  workloadIps: string[];
  protocol: TunnelProtocol;
  node: string;
  network: string;
  hostname: string;
  clusterId: string;
  canonicalName: string;
  canonicalRevision: string;
  workloadName: string;
  workloadType: string;
  status: WorkloadStatus;
  capacity: number;
  locality?: Locality;
  waypoint?: GatewayAddress;
  /** `namespace/hostname` of each service this workload backs, with its port map. */
  services: ReadonlyMap<string, PortMap>;
  /** `namespace/name` keys of workload-selector policies that apply to it. */
  authorizationPolicies: string[];
}

export interface Service {
  name: string;
  namespace: string;
  hostname: string;
  vips: NetworkAddress[];
  ports: PortMap;
  subjectAltNames: string[];
  canonical: boolean;
  waypoint?: GatewayAddress;
}

export type StringMatch = { exact: string } | { prefix: string } | { suffix: string } | { presence: true };

export interface Cidr {
  address: string;
  length: number;
}

export interface ServiceAccountMatch {
  namespace: string;
  serviceAccount: string;
}

/** Every populated field must pass; within a field any positive entry and no negative entry. */
export interface Match {
  namespaces: StringMatch[];
  notNamespaces: StringMatch[];
  principals: StringMatch[];
  notPrincipals: StringMatch[];
  sourceIps: Cidr[];
  notSourceIps: Cidr[];
  destinationIps: Cidr[];
  notDestinationIps: Cidr[];
  destinationPorts: number[];
  notDestinationPorts: number[];
  serviceAccounts: ServiceAccountMatch[];
  notServiceAccounts: ServiceAccountMatch[];
}

/** A match with every field empty (matches anything), to fill in field by field. */
export function emptyMatch(): Match {
  return {
    namespaces: [],
    notNamespaces: [],
    principals: [],
    notPrincipals: [],
    sourceIps: [],
    notSourceIps: [],
    destinationIps: [],
    notDestinationIps: [],
    destinationPorts: [],
    notDestinationPorts: [],
    serviceAccounts: [],
    notServiceAccounts: [],
  };
}

/** Rules are ORed; a rule's clauses are ANDed; a clause's matches are ORed. */
export type Rule = Match[][];

export type PolicyScope = 'Global' | 'Namespace' | 'WorkloadSelector';
export type PolicyAction = 'Allow' | 'Deny';

export interface Authorization {
  name: string;
  namespace: string;
  scope: PolicyScope;
  action: PolicyAction;
  dryRun: boolean;
  rules: Rule[];
}

export interface DiscoverySnapshot {
  workloads: Workload[];
  services: Service[];
  policies: Authorization[];
}

export function serviceKey(s: Pick<Service, 'namespace' | 'hostname'>): string {
  return `${s.namespace}/${s.hostname}`;
}

export function policyKey(p: Pick<Authorization, 'namespace' | 'name'>): string {
  return `${p.namespace}/${p.name}`;
}
