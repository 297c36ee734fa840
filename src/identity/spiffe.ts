/**
 * Istio workload identities: `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
 * A `SpiffeId` value is always in canonical form, so two ids are equal exactly when their strings are.
 */
import type { AmbitError } from '../errors.js';
import { identityError } from './errors.js';

declare const spiffeBrand: unique symbol;
declare const trustDomainBrand: unique symbol;

export type SpiffeId = string & { readonly [spiffeBrand]: 'SpiffeId' };
export type TrustDomain = string & { readonly [trustDomainBrand]: 'TrustDomain' };

export interface SpiffeParts {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

const PREFIX = 'spiffe://';
// SPIFFE ID spec: trust domains are lower-case letters, digits, '.', '-', '_'; path segments add upper case.
const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/;
const SEGMENT_RE = /^[A-Za-z0-9._-]+$/;
const MAX_LENGTH = 2048;

function invalid(input: string, why: string): AmbitError {
  const shown = input.length > 120 ? `${input.slice(0, 120)}...` : input;
  return identityError(
    'ERR_SPIFFE_ID',
    `invalid SPIFFE id ${JSON.stringify(shown)}: ${why} (expected spiffe://<trust domain>/ns/<namespace>/sa/<service account>)`,
  );
}

function checkTrustDomain(value: string, input: string): void {
  if (value === '') throw invalid(input, 'empty trust domain');
  if (!TRUST_DOMAIN_RE.test(value)) {
    throw invalid(input, `trust domain ${JSON.stringify(value)} may only contain a-z, 0-9, '.', '-', '_'`);
  }
}

function checkSegment(value: string, what: string, input: string): void {
  if (value === '') throw invalid(input, `empty ${what}`);
  if (value === '.' || value === '..' || !SEGMENT_RE.test(value)) {
    throw invalid(input, `${what} ${JSON.stringify(value)} may only contain A-Z, a-z, 0-9, '.', '-', '_'`);
  }
}

/** Parses and checks an Istio SPIFFE id; anything else throws ERR_SPIFFE_ID. */
export function parseSpiffeId(input: string): SpiffeId {
  if (typeof input !== 'string') throw invalid(String(input), 'not a string');
  if (input.length > MAX_LENGTH) throw invalid(input, `longer than ${MAX_LENGTH} characters`);
  if (!input.startsWith(PREFIX)) throw invalid(input, 'scheme must be spiffe://');
  const rest = input.slice(PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash < 0) throw invalid(input, 'missing /ns/<namespace>/sa/<service account> path');
  const trustDomain = rest.slice(0, slash);
  checkTrustDomain(trustDomain, input);
  const segments = rest.slice(slash + 1).split('/');
  if (segments.length !== 4 || segments[0] !== 'ns' || segments[2] !== 'sa') {
    throw invalid(input, 'path must be exactly /ns/<namespace>/sa/<service account>');
  }
  checkSegment(segments[1]!, 'namespace', input);
  checkSegment(segments[3]!, 'service account', input);
  return input as SpiffeId;
}

/** True when `input` is a valid Istio SPIFFE id. */
export function isSpiffeId(input: string): input is SpiffeId {
  try {
    parseSpiffeId(input);
    return true;
  } catch {
    return false;
  }
}

/** Builds the id of a workload; an empty service account means `default`, as in Istio. */
export function formatSpiffeId(parts: SpiffeParts): SpiffeId {
  const sa = parts.serviceAccount === '' ? 'default' : parts.serviceAccount;
  return parseSpiffeId(`${PREFIX}${parts.trustDomain}/ns/${parts.namespace}/sa/${sa}`);
}

export function parseTrustDomain(input: string): TrustDomain {
  checkTrustDomain(input, `${PREFIX}${input}`);
  return input as TrustDomain;
}

export function spiffeParts(id: SpiffeId): SpiffeParts {
  const rest = id.slice(PREFIX.length);
  const slash = rest.indexOf('/');
  const segments = rest.slice(slash + 1).split('/');
  return { trustDomain: rest.slice(0, slash), namespace: segments[1]!, serviceAccount: segments[3]! };
}

export function trustDomainOf(id: SpiffeId): TrustDomain {
  return spiffeParts(id).trustDomain as TrustDomain;
}

export function namespaceOf(id: SpiffeId): string {
  return spiffeParts(id).namespace;
}

export function serviceAccountOf(id: SpiffeId): string {
  return spiffeParts(id).serviceAccount;
}

export function sameSpiffeId(a: SpiffeId, b: SpiffeId): boolean {
  return a === b;
}

/** Total order (by trust domain, namespace, service account) for stable listings. */
export function compareSpiffeIds(a: SpiffeId, b: SpiffeId): number {
  const pa = spiffeParts(a);
  const pb = spiffeParts(b);
  return (
    cmp(pa.trustDomain, pb.trustDomain) ||
    cmp(pa.namespace, pb.namespace) ||
    cmp(pa.serviceAccount, pb.serviceAccount)
  );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
