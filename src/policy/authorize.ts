/**
 * L4 authorization as ztunnel evaluates it (reference ztunnel.md §6): enforced DENY policies first,
 * then no enforced ALLOW policy = allow, else one ALLOW must match. Dry-run matches are only logged.
 */
import { BlockList, isIP } from 'node:net';
import type { Authorization, Cidr, Match, ServiceAccountMatch, StringMatch } from '../discovery/types.js';
import { namespaceOf, type SpiffeId, serviceAccountOf } from '../identity/spiffe.js';
import { unmapIPv4 } from '../net/ip.js';
import { logger } from '../runtime/log.js';

const log = logger('ztunnel::rbac');
const SPIFFE_PREFIX = 'spiffe://';

/** What a policy sees of one connection; the destination is the app target, never :15008. */
export interface ConnectionAttributes {
  srcIp: string;
  /** The verified peer identity; undefined for plaintext (15006). */
  srcIdentity?: SpiffeId;
  dstIp: string;
  dstPort: number;
}

export type Verdict = { allowed: true } | { allowed: false; reason: string };

function stringMatches(m: StringMatch, value: string): boolean {
  if ('exact' in m) return value === m.exact;
  if ('prefix' in m) return value.startsWith(m.prefix);
  if ('suffix' in m) return value.endsWith(m.suffix);
  return value !== '';
}

/** Principals compare without `spiffe://`; a policy written with the prefix is read the same way. */
function principalMatches(m: StringMatch, principal: string): boolean {
  const strip = (v: string) => (v.startsWith(SPIFFE_PREFIX) ? v.slice(SPIFFE_PREFIX.length) : v);
  if ('exact' in m) return principal === strip(m.exact);
  if ('prefix' in m) return principal.startsWith(strip(m.prefix));
  return stringMatches(m, principal);
}

function cidrMatches(c: Cidr, ip: string): boolean {
  const family = isIP(c.address) === 6 ? 'ipv6' : 'ipv4';
  const addr = unmapIPv4(ip);
  if ((isIP(addr) === 6 ? 'ipv6' : 'ipv4') !== family) return false;
  const list = new BlockList();
  list.addSubnet(c.address, c.length, family);
  return list.check(addr, family);
}

function saMatches(m: ServiceAccountMatch, identity: SpiffeId | undefined): boolean {
  if (!identity) return false;
  return namespaceOf(identity) === m.namespace && serviceAccountOf(identity) === m.serviceAccount;
}

/** A field passes when (no positive entries or one matches) and no negative entry matches. */
function field<T>(pos: readonly T[], neg: readonly T[], test: (entry: T) => boolean): boolean {
  return (pos.length === 0 || pos.some(test)) && !neg.some(test);
}

function isEmptyMatch(m: Match): boolean {
  return Object.values(m).every((v) => (v as unknown[]).length === 0);
}

function matchPasses(m: Match, c: ConnectionAttributes): boolean {
  const principal = c.srcIdentity?.slice(SPIFFE_PREFIX.length);
  const namespace = c.srcIdentity ? namespaceOf(c.srcIdentity) : '';
  return (
    field(m.principals, m.notPrincipals, (s) => principal !== undefined && principalMatches(s, principal)) &&
    field(m.namespaces, m.notNamespaces, (s) => stringMatches(s, namespace)) &&
    field(m.serviceAccounts, m.notServiceAccounts, (s) => saMatches(s, c.srcIdentity)) &&
    field(m.sourceIps, m.notSourceIps, (r) => cidrMatches(r, c.srcIp)) &&
    field(m.destinationIps, m.notDestinationIps, (r) => cidrMatches(r, c.dstIp)) &&
    field(m.destinationPorts, m.notDestinationPorts, (p) => p === c.dstPort)
  );
}

/** Rules OR; a rule's clauses AND (an empty clause is true); a clause's non-empty matches OR. */
export function policyMatches(policy: Authorization, c: ConnectionAttributes): boolean {
  return policy.rules.some((rule) =>
    rule.every((clause) => {
      const matches = clause.filter((m) => !isEmptyMatch(m));
      return matches.length === 0 || matches.some((m) => matchPasses(m, c));
    }),
  );
}

function describe(c: ConnectionAttributes): string {
  return `${c.srcIdentity ?? 'no identity'} ${c.srcIp} -> ${c.dstIp}:${c.dstPort}`;
}

/**
 * Where a matched dry-run policy is logged: ztunnel's AUTHZ_POLICY_INFO_LOGGING raises it to info. Read when
 * one matches, not per connection: process.env is a getenv call behind an interceptor.
 */
function dryRunLogLevel(): 'info' | 'debug' {
  return process.env['AUTHZ_POLICY_INFO_LOGGING'] === 'true' ? 'info' : 'debug';
}

const ALLOWED: Verdict = Object.freeze({ allowed: true });

/** Evaluates the applicable policies for one connection. */
export function authorize(policies: readonly Authorization[], c: ConnectionAttributes): Verdict {
  if (policies.length === 0) return ALLOWED;
  const deny = policies.filter((p) => p.action === 'Deny');
  const allow = policies.filter((p) => p.action === 'Allow');
  for (const p of deny) {
    if (!policyMatches(p, c)) continue;
    if (p.dryRun)
      log[dryRunLogLevel()]('dry-run deny policy matched', {
        policy: `${p.namespace}/${p.name}`,
        conn: describe(c),
      });
    else return { allowed: false, reason: `explicitly denied by: ${p.namespace}/${p.name}` };
  }
  for (const p of allow) {
    if (p.dryRun && policyMatches(p, c))
      log[dryRunLogLevel()]('dry-run allow policy matched', {
        policy: `${p.namespace}/${p.name}`,
        conn: describe(c),
      });
  }
  const enforced = allow.filter((p) => !p.dryRun);
  if (enforced.length === 0) return ALLOWED;
  if (enforced.some((p) => policyMatches(p, c))) return ALLOWED;
  return { allowed: false, reason: 'allow policies exist, but none allowed' };
}
