/**
 * IPv6 CIDR arithmetic for the lab's IPv6 node and pod ranges (cidr.ts does IPv4): 128-bit values as
 * bigint, text in the compressed form `ip -6` prints (RFC 5952), so state, CNI results and the API
 * server's podIPs name an address the same way.
 */
import { isIPv6 } from 'node:net';
import { labError } from './errors.js';

export interface Cidr6 {
  /** Network address as a 128-bit number (host bits zero). */
  readonly network: bigint;
  readonly prefix: number;
}

function ipToBigint(ip: string): bigint {
  const [head = '', tail] = ip.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return all.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
}

/** The compressed text of a 128-bit address (the URL serializer compresses as RFC 5952 says). */
export function bigintToIp6(n: bigint): string {
  const groups: string[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(((n >> shift) & 0xffffn).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

function size(prefix: number): bigint {
  return 1n << BigInt(128 - prefix);
}

/** Parses `addr/len`; host bits must be zero so a typo in the prefix is not silently widened. */
export function parseCidr6(text: string, what = 'IPv6 CIDR', minPrefix = 8, maxPrefix = 120): Cidr6 {
  const fail = (why: string): never => {
    throw labError('LAB_BAD_CIDR', `invalid ${what} '${text}': ${why} (expected e.g. fd00:10:244::/56)`);
  };
  const m = /^([0-9a-fA-F:]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m) return fail('not IPv6 address/prefix-length');
  const [, ip, len] = m as unknown as [string, string, string];
  if (!isIPv6(ip)) fail(`'${ip}' is not an IPv6 address`);
  const prefix = Number(len);
  if (prefix < minPrefix || prefix > maxPrefix)
    fail(`prefix length must be between ${minPrefix} and ${maxPrefix}`);
  const network = ipToBigint(ip);
  const extra = network % size(prefix);
  if (extra !== 0n)
    fail(`host bits are set (did you mean ${formatCidr6({ network: network - extra, prefix })}?)`);
  return { network, prefix };
}

export function formatCidr6(c: Cidr6): string {
  return `${bigintToIp6(c.network)}/${c.prefix}`;
}

/** The n-th address of the block (1 = first host; IPv6 has no broadcast, but the last stays unused). */
export function hostAddress6(c: Cidr6, n: number): string {
  if (n < 1 || BigInt(n) >= size(c.prefix) - 1n) {
    throw labError('LAB_SUBNET_TOO_SMALL', `${formatCidr6(c)} has no host number ${n}`);
  }
  return bigintToIp6(c.network + BigInt(n));
}

/** The index-th block of length `prefix` inside `c`. */
export function subnet6(c: Cidr6, prefix: number, index: number): Cidr6 {
  if (prefix < c.prefix || index < 0 || BigInt(index) >= 1n << BigInt(prefix - c.prefix)) {
    throw labError(
      'LAB_SUBNET_TOO_SMALL',
      `${formatCidr6(c)} has no /${prefix} block number ${index} (use a larger IPv6 pod CIDR)`,
    );
  }
  return { network: c.network + BigInt(index) * size(prefix), prefix };
}

export function overlaps6(a: Cidr6, b: Cidr6): boolean {
  return a.network < b.network + size(b.prefix) && b.network < a.network + size(a.prefix);
}
