/**
 * `security.istio.io` AuthorizationPolicy objects to the L4 `istio.security.Authorization` ztunnel
 * enforces, as istiod does for ambient: no selector = the namespace's policy (GLOBAL in the root
 * namespace), a selector = a WORKLOAD_SELECTOR policy that workloads list by `namespace/name`. An
 * AuthorizationPolicy rule becomes one Authorization rule whose clauses are its `to` list, its `from`
 * list and one per `when` condition. HTTP attributes cannot be seen at L4: a DENY rule keeps its L4
 * parts (it denies more than asked), an ALLOW rule using them is dropped (it allows less); either way
 * the policy carries a warning. AUDIT and CUSTOM are not supported by ztunnel: the policy is skipped.
 * Values ztunnel cannot read (a port that is not a number, an address that is not a CIDR) are left
 * out, as istiod leaves them out, rather than failing the policy.
 */
import { isIP } from 'node:net';
import {
  type Authorization,
  type Cidr,
  emptyMatch,
  type Match,
  type PolicyAction,
  type PolicyScope,
  type Rule,
  type ServiceAccountMatch,
  type StringMatch,
} from '../../discovery/types.js';

export const AUTHORIZATION_POLICY_GROUP = 'security.istio.io';
export const AUTHORIZATION_POLICY_VERSION = 'v1';
export const AUTHORIZATION_POLICY_PLURAL = 'authorizationpolicies';

/** The object as read from the API server; every field is untrusted. */
export interface AuthorizationPolicyObject {
  metadata?: { name?: string; namespace?: string };
  spec?: unknown;
}

export interface ConvertedPolicy {
  authorization: Authorization;
  /** `matchLabels` of a WORKLOAD_SELECTOR policy. */
  selector?: Record<string, string>;
  /** Why the policy enforces less or more than written (istiod's status message), if it does. */
  warning?: string;
}

export type ConversionResult =
  | { ok: true; policy: ConvertedPolicy }
  /** Not for ztunnel (targetRefs: a waypoint's) or not enforceable by it (AUDIT, CUSTOM). */
  | { ok: false; reason: string };

const HTTP_ALLOW_NOTE =
  'Within an ALLOW policy, rules matching HTTP attributes are omitted. This will be more restrictive than requested.';
const HTTP_DENY_NOTE =
  'DENY policy with HTTP attributes is enforced without the HTTP rules. This will be more restrictive than requested.';

/** `when` keys ztunnel can evaluate; any other key is an HTTP (or JWT) attribute. */
const L4_WHEN_KEYS = new Set([
  'source.ip',
  'source.namespace',
  'source.principal',
  'destination.ip',
  'destination.port',
]);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
const nonEmpty = (o: Obj, key: string): boolean => Array.isArray(o[key]) && (o[key] as unknown[]).length > 0;

/** Istio's wildcard strings: `*` any non-empty value, `*x` suffix, `x*` prefix, else exact. */
function stringMatches(values: string[]): StringMatch[] {
  return values.map((v) => {
    if (v === '*') return { presence: true };
    if (v.startsWith('*')) return { suffix: v.slice(1) };
    if (v.endsWith('*')) return { prefix: v.slice(0, -1) };
    return { exact: v };
  });
}

function ports(values: string[]): number[] {
  return values.filter((p) => /^\d{1,5}$/.test(p) && Number(p) <= 65535).map(Number);
}

function cidrs(values: string[]): Cidr[] {
  const out: Cidr[] = [];
  for (const v of values) {
    const [address = '', length, ...rest] = v.split('/');
    const family = isIP(address);
    if (family === 0 || rest.length > 0) continue;
    const max = family === 4 ? 32 : 128;
    const n = length === undefined ? max : /^\d{1,3}$/.test(length) ? Number(length) : -1;
    if (n < 0 || n > max) continue;
    out.push({ address, length: n });
  }
  return out;
}

/** `ns/sa`, or a bare `sa` in the policy's own namespace. */
function serviceAccounts(values: string[], namespace: string): ServiceAccountMatch[] {
  return values.map((v) => {
    const slash = v.indexOf('/');
    return slash >= 0
      ? { namespace: v.slice(0, slash), serviceAccount: v.slice(slash + 1) }
      : { namespace, serviceAccount: v };
  });
}

const HTTP_OPERATION_FIELDS = ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'];
const HTTP_SOURCE_FIELDS = [
  'remoteIpBlocks',
  'notRemoteIpBlocks',
  'requestPrincipals',
  'notRequestPrincipals',
];

/** One AuthorizationPolicy rule; `http` collects the HTTP attributes it uses. */
function convertRule(rule: Obj, namespace: string, http: Set<string>): Rule {
  const clauses: Match[][] = [];
  const to = Array.isArray(rule['to']) ? rule['to'] : [];
  if (to.length > 0)
    clauses.push(
      to.map((t) => {
        const op = obj(obj(t)['operation']);
        for (const f of HTTP_OPERATION_FIELDS) if (nonEmpty(op, f)) http.add(f);
        return {
          ...emptyMatch(),
          destinationPorts: ports(strings(op['ports'])),
          notDestinationPorts: ports(strings(op['notPorts'])),
        };
      }),
    );
  const from = Array.isArray(rule['from']) ? rule['from'] : [];
  if (from.length > 0)
    clauses.push(
      from.map((f) => {
        const src = obj(obj(f)['source']);
        for (const k of HTTP_SOURCE_FIELDS) if (nonEmpty(src, k)) http.add(k);
        return {
          ...emptyMatch(),
          sourceIps: cidrs(strings(src['ipBlocks'])),
          notSourceIps: cidrs(strings(src['notIpBlocks'])),
          namespaces: stringMatches(strings(src['namespaces'])),
          notNamespaces: stringMatches(strings(src['notNamespaces'])),
          serviceAccounts: serviceAccounts(strings(src['serviceAccounts']), namespace),
          notServiceAccounts: serviceAccounts(strings(src['notServiceAccounts']), namespace),
          principals: stringMatches(strings(src['principals'])),
          notPrincipals: stringMatches(strings(src['notPrincipals'])),
        };
      }),
    );
  for (const w of Array.isArray(rule['when']) ? rule['when'] : []) {
    const cond = obj(w);
    const key = typeof cond['key'] === 'string' ? cond['key'] : '';
    if (!L4_WHEN_KEYS.has(key)) http.add(key);
    const values = strings(cond['values']);
    const notValues = strings(cond['notValues']);
    const m = emptyMatch();
    if (key === 'source.namespace') {
      m.namespaces = stringMatches(values);
      m.notNamespaces = stringMatches(notValues);
    } else if (key === 'source.principal') {
      m.principals = stringMatches(values);
      m.notPrincipals = stringMatches(notValues);
    } else if (key === 'source.ip') {
      m.sourceIps = cidrs(values);
      m.notSourceIps = cidrs(notValues);
    } else if (key === 'destination.ip') {
      m.destinationIps = cidrs(values);
      m.notDestinationIps = cidrs(notValues);
    } else if (key === 'destination.port') {
      m.destinationPorts = ports(values);
      m.notDestinationPorts = ports(notValues);
    }
    clauses.push([m]);
  }
  return clauses;
}

export function convertAuthorizationPolicy(
  ap: AuthorizationPolicyObject,
  rootNamespace: string,
): ConversionResult {
  const name = ap.metadata?.name ?? '';
  const namespace = ap.metadata?.namespace ?? '';
  if (!name || !namespace) return { ok: false, reason: 'the object has no name or namespace' };
  const spec = obj(ap.spec);
  if (nonEmpty(spec, 'targetRefs') || isObj(spec['targetRef']))
    return { ok: false, reason: 'a policy with targetRefs is enforced by a waypoint, not by ztunnel' };
  const actionText = spec['action'] === undefined ? 'ALLOW' : spec['action'];
  let action: PolicyAction;
  if (actionText === 'ALLOW') action = 'Allow';
  else if (actionText === 'DENY') action = 'Deny';
  else return { ok: false, reason: `ztunnel does not support the ${String(actionText)} action` };

  const selectorObj = isObj(spec['selector']) ? spec['selector'] : undefined;
  let scope: PolicyScope = 'WorkloadSelector';
  if (!selectorObj) scope = namespace === rootNamespace ? 'Global' : 'Namespace';
  const selector: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj(selectorObj?.['matchLabels'])))
    if (typeof v === 'string') selector[k] = v;

  const rules: Rule[] = [];
  const http = new Set<string>();
  for (const raw of Array.isArray(spec['rules']) ? spec['rules'] : []) {
    const found = new Set<string>();
    const rule = convertRule(obj(raw), namespace, found);
    for (const f of found) http.add(f);
    // An HTTP attribute never matches at L4: such an ALLOW rule can allow nothing.
    if (action === 'Allow' && found.size > 0) continue;
    rules.push(rule);
  }
  const policy: ConvertedPolicy = {
    authorization: {
      name,
      namespace,
      scope,
      action,
      dryRun: false,
      rules,
    },
  };
  if (selectorObj) policy.selector = selector;
  if (http.size > 0)
    policy.warning = `ztunnel does not support HTTP attributes (found: ${[...http].sort().join(', ')}). In ambient mode you must use a waypoint proxy to enforce HTTP rules. ${action === 'Allow' ? HTTP_ALLOW_NOTE : HTTP_DENY_NOTE}`;
  return { ok: true, policy };
}

/**
 * Whether a WORKLOAD_SELECTOR policy applies to a pod: same namespace (any namespace for a policy in
 * the root namespace) and every selector label present with its value. An empty selector selects
 * every pod of its scope, as Istio's selector does.
 */
export function selectsWorkload(
  policyNamespace: string,
  selector: Record<string, string>,
  rootNamespace: string,
  pod: { namespace: string; labels: Record<string, string> },
): boolean {
  if (policyNamespace !== rootNamespace && policyNamespace !== pod.namespace) return false;
  return Object.entries(selector).every(([k, v]) => pod.labels[k] === v);
}
