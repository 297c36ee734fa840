/**
 * Message schemas and TypeScript shapes for proto/istio-ca.proto, proto/workload.proto,
 * proto/authorization.proto, proto/envoy-delta-discovery.proto and the Google well-known types they use.
 * Property names are the camelCase of the proto field names; numbers are the proto's.
 */
import type { FieldSpec, FieldType, MessageSchema } from './codec.js';

const msg = (name: string, fields: FieldSpec[]): MessageSchema => ({ name, fields });
const f = (no: number, name: string, type: FieldType, extra: Partial<FieldSpec> = {}): FieldSpec => ({
  no,
  name,
  type,
  ...extra,
});
const ref = (schema: () => MessageSchema): FieldType => ({ message: schema });
const list = { repeated: true };

// google.protobuf.* and google.rpc.Status

/** One member of the `kind` oneof is set. */
export interface Value {
  nullValue?: number | undefined;
  numberValue?: number | undefined;
  stringValue?: string | undefined;
  boolValue?: boolean | undefined;
  structValue?: Struct | undefined;
  listValue?: { values: Value[] } | undefined;
}

export interface Struct {
  fields: Record<string, Value>;
}

export const StructSchema: MessageSchema = msg('google.protobuf.Struct', [
  f(
    1,
    'fields',
    ref(() => ValueSchema),
    { map: true },
  ),
]);
export const ValueSchema: MessageSchema = msg('google.protobuf.Value', [
  f(1, 'nullValue', 'int32', { oneof: 'kind' }),
  f(2, 'numberValue', 'double', { oneof: 'kind' }),
  f(3, 'stringValue', 'string', { oneof: 'kind' }),
  f(4, 'boolValue', 'bool', { oneof: 'kind' }),
  f(
    5,
    'structValue',
    ref(() => StructSchema),
    { oneof: 'kind' },
  ),
  f(
    6,
    'listValue',
    ref(() => ListValueSchema),
    { oneof: 'kind' },
  ),
]);
const ListValueSchema: MessageSchema = msg('google.protobuf.ListValue', [
  f(
    1,
    'values',
    ref(() => ValueSchema),
    list,
  ),
]);

/** A Struct of string values, as Istio puts request and node metadata. */
export function stringStruct(values: Record<string, string>): Struct {
  return { fields: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, { stringValue: v }])) };
}

export function structString(s: Struct | undefined, key: string): string | undefined {
  return s?.fields[key]?.stringValue;
}

export interface Any {
  typeUrl: string;
  value: Uint8Array;
}
export const AnySchema: MessageSchema = msg('google.protobuf.Any', [
  f(1, 'typeUrl', 'string'),
  f(2, 'value', 'bytes'),
]);

export interface RpcStatus {
  code: number;
  message: string;
  details: Any[];
}
export const RpcStatusSchema: MessageSchema = msg('google.rpc.Status', [
  f(1, 'code', 'int32'),
  f(2, 'message', 'string'),
  f(
    3,
    'details',
    ref(() => AnySchema),
    list,
  ),
]);

const UInt32ValueSchema: MessageSchema = msg('google.protobuf.UInt32Value', [f(1, 'value', 'uint32')]);
const EmptySchema: MessageSchema = msg('google.protobuf.Empty', []);

// istio.v1.auth

export interface IstioCertificateRequest {
  csr: string;
  validityDuration: number;
  metadata?: Struct | undefined;
}
export const IstioCertificateRequestSchema: MessageSchema = msg('istio.v1.auth.IstioCertificateRequest', [
  f(1, 'csr', 'string'),
  f(3, 'validityDuration', 'int64'),
  f(
    4,
    'metadata',
    ref(() => StructSchema),
  ),
]);

export interface IstioCertificateResponse {
  certChain: string[];
}
export const IstioCertificateResponseSchema: MessageSchema = msg('istio.v1.auth.IstioCertificateResponse', [
  f(1, 'certChain', 'string', list),
]);

// istio.workload

export interface PbNetworkAddress {
  network: string;
  address: Uint8Array;
}
const NetworkAddressSchema = msg('istio.workload.NetworkAddress', [
  f(1, 'network', 'string'),
  f(2, 'address', 'bytes'),
]);

export interface PbGatewayAddress {
  hostname?: { namespace: string; hostname: string } | undefined;
  address?: PbNetworkAddress | undefined;
  hboneMtlsPort: number;
}
const GatewayAddressSchema = msg('istio.workload.GatewayAddress', [
  f(
    1,
    'hostname',
    ref(() =>
      msg('istio.workload.NamespacedHostname', [f(1, 'namespace', 'string'), f(2, 'hostname', 'string')]),
    ),
    { oneof: 'destination' },
  ),
  f(
    2,
    'address',
    ref(() => NetworkAddressSchema),
    { oneof: 'destination' },
  ),
  f(3, 'hboneMtlsPort', 'uint32'),
]);

export interface PbPort {
  servicePort: number;
  targetPort: number;
}
const PortSchema = msg('istio.workload.Port', [f(1, 'servicePort', 'uint32'), f(2, 'targetPort', 'uint32')]);
const PortListSchema = msg('istio.workload.PortList', [
  f(
    1,
    'ports',
    ref(() => PortSchema),
    list,
  ),
]);

export const TUNNEL_NONE = 0;
export const TUNNEL_HBONE = 1;
export const WORKLOAD_TYPES = ['deployment', 'cronjob', 'pod', 'job'] as const;

export interface PbWorkload {
  uid: string;
  name: string;
  namespace: string;
  addresses: Uint8Array[];
  hostname: string;
  network: string;
  tunnelProtocol: number;
  trustDomain: string;
  serviceAccount: string;
  waypoint?: PbGatewayAddress | undefined;
  node: string;
  canonicalName: string;
  canonicalRevision: string;
  workloadType: number;
  workloadName: string;
  services: Record<string, { ports: PbPort[] }>;
  authorizationPolicies: string[];
  status: number;
  clusterId: string;
  locality?: { region: string; zone: string; subzone: string } | undefined;
  capacity?: { value: number } | undefined;
}
export const WorkloadSchema: MessageSchema = msg('istio.workload.Workload', [
  f(20, 'uid', 'string'),
  f(1, 'name', 'string'),
  f(2, 'namespace', 'string'),
  f(3, 'addresses', 'bytes', list),
  f(21, 'hostname', 'string'),
  f(4, 'network', 'string'),
  f(5, 'tunnelProtocol', 'int32'),
  f(6, 'trustDomain', 'string'),
  f(7, 'serviceAccount', 'string'),
  f(
    8,
    'waypoint',
    ref(() => GatewayAddressSchema),
  ),
  f(9, 'node', 'string'),
  f(10, 'canonicalName', 'string'),
  f(11, 'canonicalRevision', 'string'),
  f(12, 'workloadType', 'int32'),
  f(13, 'workloadName', 'string'),
  f(
    22,
    'services',
    ref(() => PortListSchema),
    { map: true },
  ),
  f(16, 'authorizationPolicies', 'string', list),
  f(17, 'status', 'int32'),
  f(18, 'clusterId', 'string'),
  f(
    24,
    'locality',
    ref(() =>
      msg('istio.workload.Locality', [
        f(1, 'region', 'string'),
        f(2, 'zone', 'string'),
        f(3, 'subzone', 'string'),
      ]),
    ),
  ),
  f(
    27,
    'capacity',
    ref(() => UInt32ValueSchema),
  ),
]);

export interface PbService {
  name: string;
  namespace: string;
  hostname: string;
  addresses: PbNetworkAddress[];
  ports: PbPort[];
  subjectAltNames: string[];
  waypoint?: PbGatewayAddress | undefined;
  canonical: boolean;
}
export const ServiceSchema: MessageSchema = msg('istio.workload.Service', [
  f(1, 'name', 'string'),
  f(2, 'namespace', 'string'),
  f(3, 'hostname', 'string'),
  f(
    4,
    'addresses',
    ref(() => NetworkAddressSchema),
    list,
  ),
  f(
    5,
    'ports',
    ref(() => PortSchema),
    list,
  ),
  f(6, 'subjectAltNames', 'string', list),
  f(
    7,
    'waypoint',
    ref(() => GatewayAddressSchema),
  ),
  f(11, 'canonical', 'bool'),
]);

export interface PbAddress {
  workload?: PbWorkload | undefined;
  service?: PbService | undefined;
}
export const AddressSchema: MessageSchema = msg('istio.workload.Address', [
  f(
    1,
    'workload',
    ref(() => WorkloadSchema),
    { oneof: 'type' },
  ),
  f(
    2,
    'service',
    ref(() => ServiceSchema),
    { oneof: 'type' },
  ),
]);

// istio.security

export interface PbStringMatch {
  exact?: string | undefined;
  prefix?: string | undefined;
  suffix?: string | undefined;
  presence?: Record<string, never> | undefined;
}
const StringMatchSchema = msg('istio.security.StringMatch', [
  f(1, 'exact', 'string', { oneof: 'matchType' }),
  f(2, 'prefix', 'string', { oneof: 'matchType' }),
  f(3, 'suffix', 'string', { oneof: 'matchType' }),
  f(
    4,
    'presence',
    ref(() => EmptySchema),
    { oneof: 'matchType' },
  ),
]);
export interface PbCidr {
  address: Uint8Array;
  length: number;
}
const CidrSchema = msg('istio.security.Address', [f(1, 'address', 'bytes'), f(2, 'length', 'uint32')]);
export interface PbServiceAccountMatch {
  namespace: string;
  serviceAccount: string;
}
const ServiceAccountMatchSchema = msg('istio.security.ServiceAccountMatch', [
  f(1, 'namespace', 'string'),
  f(2, 'serviceAccount', 'string'),
]);

export interface PbMatch {
  namespaces: PbStringMatch[];
  notNamespaces: PbStringMatch[];
  principals: PbStringMatch[];
  notPrincipals: PbStringMatch[];
  sourceIps: PbCidr[];
  notSourceIps: PbCidr[];
  destinationIps: PbCidr[];
  notDestinationIps: PbCidr[];
  destinationPorts: number[];
  notDestinationPorts: number[];
  serviceAccounts: PbServiceAccountMatch[];
  notServiceAccounts: PbServiceAccountMatch[];
}
const MatchSchema = msg('istio.security.Match', [
  f(
    1,
    'namespaces',
    ref(() => StringMatchSchema),
    list,
  ),
  f(
    2,
    'notNamespaces',
    ref(() => StringMatchSchema),
    list,
  ),
  f(
    3,
    'principals',
    ref(() => StringMatchSchema),
    list,
  ),
  f(
    4,
    'notPrincipals',
    ref(() => StringMatchSchema),
    list,
  ),
  f(
    5,
    'sourceIps',
    ref(() => CidrSchema),
    list,
  ),
  f(
    6,
    'notSourceIps',
    ref(() => CidrSchema),
    list,
  ),
  f(
    7,
    'destinationIps',
    ref(() => CidrSchema),
    list,
  ),
  f(
    8,
    'notDestinationIps',
    ref(() => CidrSchema),
    list,
  ),
  f(9, 'destinationPorts', 'uint32', list),
  f(10, 'notDestinationPorts', 'uint32', list),
  f(
    11,
    'serviceAccounts',
    ref(() => ServiceAccountMatchSchema),
    list,
  ),
  f(
    12,
    'notServiceAccounts',
    ref(() => ServiceAccountMatchSchema),
    list,
  ),
]);
const ClauseSchema = msg('istio.security.Clause', [
  f(
    2,
    'matches',
    ref(() => MatchSchema),
    list,
  ),
]);
const RuleSchema = msg('istio.security.Rule', [
  f(
    1,
    'clauses',
    ref(() => ClauseSchema),
    list,
  ),
]);

export const SCOPES = ['Global', 'Namespace', 'WorkloadSelector'] as const;
export const ACTIONS = ['Allow', 'Deny'] as const;

export interface PbAuthorization {
  name: string;
  namespace: string;
  scope: number;
  action: number;
  rules: { clauses: { matches: PbMatch[] }[] }[];
  dryRun: boolean;
}
export const AuthorizationSchema: MessageSchema = msg('istio.security.Authorization', [
  f(1, 'name', 'string'),
  f(2, 'namespace', 'string'),
  f(3, 'scope', 'int32'),
  f(4, 'action', 'int32'),
  f(
    5,
    'rules',
    ref(() => RuleSchema),
    list,
  ),
  f(6, 'dryRun', 'bool'),
]);

// envoy.service.discovery.v3

export interface Node {
  id: string;
  cluster: string;
  metadata?: Struct | undefined;
}
const NodeSchema = msg('envoy.config.core.v3.Node', [
  f(1, 'id', 'string'),
  f(2, 'cluster', 'string'),
  f(
    3,
    'metadata',
    ref(() => StructSchema),
  ),
]);

export interface DeltaDiscoveryRequest {
  node?: Node | undefined;
  typeUrl: string;
  resourceNamesSubscribe: string[];
  resourceNamesUnsubscribe: string[];
  initialResourceVersions: Record<string, string>;
  responseNonce: string;
  errorDetail?: RpcStatus | undefined;
}
export const DeltaDiscoveryRequestSchema: MessageSchema = msg(
  'envoy.service.discovery.v3.DeltaDiscoveryRequest',
  [
    f(
      1,
      'node',
      ref(() => NodeSchema),
    ),
    f(2, 'typeUrl', 'string'),
    f(3, 'resourceNamesSubscribe', 'string', list),
    f(4, 'resourceNamesUnsubscribe', 'string', list),
    f(5, 'initialResourceVersions', 'string', { map: true }),
    f(6, 'responseNonce', 'string'),
    f(
      7,
      'errorDetail',
      ref(() => RpcStatusSchema),
    ),
  ],
);

export interface XdsResource {
  version: string;
  resource?: Any | undefined;
  name: string;
  aliases: string[];
}
const ResourceSchema = msg('envoy.service.discovery.v3.Resource', [
  f(1, 'version', 'string'),
  f(
    2,
    'resource',
    ref(() => AnySchema),
  ),
  f(3, 'name', 'string'),
  f(4, 'aliases', 'string', list),
]);

export interface DeltaDiscoveryResponse {
  systemVersionInfo: string;
  resources: XdsResource[];
  typeUrl: string;
  removedResources: string[];
  nonce: string;
}
export const DeltaDiscoveryResponseSchema: MessageSchema = msg(
  'envoy.service.discovery.v3.DeltaDiscoveryResponse',
  [
    f(1, 'systemVersionInfo', 'string'),
    f(
      2,
      'resources',
      ref(() => ResourceSchema),
      list,
    ),
    f(4, 'typeUrl', 'string'),
    f(6, 'removedResources', 'string', list),
    f(5, 'nonce', 'string'),
  ],
);

export const ADDRESS_TYPE_URL = 'type.googleapis.com/istio.workload.Address';
export const AUTHORIZATION_TYPE_URL = 'type.googleapis.com/istio.security.Authorization';
