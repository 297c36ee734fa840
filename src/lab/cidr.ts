/** IPv4 CIDR arithmetic for the lab's node and pod subnets (cidr6.ts does IPv6). */
import { isIPv4 } from 'node:net';
import { labError } from './errors.js';

export interface Cidr {
  /** Network address as an unsigned 32-bit number (host bits zero). */
  readonly network: number;
  readonly prefix: number;
}

function ipToNumber(ip: string): number {
  return ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

export function numberToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function size(prefix: number): number {
  return 2 ** (32 - prefix);
}

/** Parses `a.b.c.d/len`; host bits must be zero so a typo in the prefix is not silently widened. */
export function parseCidr(text: string, what = 'CIDR'): Cidr {
  const fail = (why: string): never => {
    throw labError('LAB_BAD_CIDR', `invalid ${what} '${text}': ${why} (expected e.g. 10.244.0.0/16)`);
  };
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(text.trim());
  if (!m) return fail('not IPv4 address/prefix-length');
  const [, ip, len] = m as unknown as [string, string, string];
  if (!isIPv4(ip)) fail(`'${ip}' is not an IPv4 address`);
  const prefix = Number(len);
  if (prefix < 8 || prefix > 30) fail('prefix length must be between 8 and 30');
  const network = ipToNumber(ip);
  if (network % size(prefix) !== 0) {
    fail(
      `host bits are set (did you mean ${formatCidr({ network: network - (network % size(prefix)), prefix })}?)`,
    );
  }
  return { network, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${numberToIp(c.network)}/${c.prefix}`;
}

/** The n-th address of the block (1 = first host). */
export function hostAddress(c: Cidr, n: number): string {
  if (n < 1 || n >= size(c.prefix) - 1) {
    throw labError('LAB_SUBNET_TOO_SMALL', `${formatCidr(c)} has no host number ${n}`);
  }
  return numberToIp(c.network + n);
}

/** The index-th block of length `prefix` inside `c`. */
export function subnet(c: Cidr, prefix: number, index: number): Cidr {
  if (prefix < c.prefix || index < 0 || index >= 2 ** (prefix - c.prefix)) {
    throw labError(
      'LAB_SUBNET_TOO_SMALL',
      `${formatCidr(c)} has no /${prefix} block number ${index} (use a larger CIDR or a longer per-node mask)`,
    );
  }
  return { network: c.network + index * size(prefix), prefix };
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  const aEnd = a.network + size(a.prefix);
  const bEnd = b.network + size(b.prefix);
  return a.network < bEnd && b.network < aEnd;
}
