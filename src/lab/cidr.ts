/**
 * CIDR arithmetic for the lab's node, pod and service ranges, one code for both families: addresses as
 * bigint (32 or 128 bits), IPv6 printed in the compressed form `ip -6` prints (RFC 5952), so state,
 * CNI results and the API server's podIPs name an address the same way.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { labError } from './errors.js';

export type Family = 4 | 6;

export interface Cidr {
  readonly family: Family;
  /** Network address (host bits zero). */
  readonly network: bigint;
  readonly prefix: number;
}

/** Per family: address width, the prefix lengths a lab range may have by default, words for errors. */
const FAMILY = {
  4: {
    bits: 32,
    minPrefix: 8,
    maxPrefix: 30,
    name: 'IPv4',
    example: '10.244.0.0/16',
    larger: 'a larger CIDR or a longer per-node mask',
  },
  6: {
    bits: 128,
    minPrefix: 8,
    maxPrefix: 120,
    name: 'IPv6',
    example: 'fd00:10:244::/56',
    larger: 'a larger IPv6 pod CIDR',
  },
} as const;

function ipToBigint(ip: string, family: Family): bigint {
  if (family === 4) return ip.split('.').reduce((acc, octet) => (acc << 8n) | BigInt(Number(octet)), 0n);
  const [head = '', tail] = ip.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return all.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
}

function bigintToIp(n: bigint, family: Family): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((shift) => String((n >> shift) & 255n)).join('.');
  const groups: string[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(((n >> shift) & 0xffffn).toString(16));
  // The URL serializer compresses an IPv6 host as RFC 5952 says.
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

function size(c: { family: Family; prefix: number }): bigint {
  return 1n << BigInt(FAMILY[c.family].bits - c.prefix);
}

/**
 * Parses `address/length` of the given family; host bits must be zero so a typo in the prefix is not
 * silently widened. The prefix length must lie in [minPrefix, maxPrefix] (by default 8..30 for IPv4,
 * 8..120 for IPv6).
 */
export function parseCidr(
  text: string,
  what = 'CIDR',
  family: Family = 4,
  minPrefix: number = FAMILY[family].minPrefix,
  maxPrefix: number = FAMILY[family].maxPrefix,
): Cidr {
  const f = FAMILY[family];
  const fail = (why: string): never => {
    throw labError('LAB_BAD_CIDR', `invalid ${what} '${text}': ${why} (expected e.g. ${f.example})`);
  };
  const m = (family === 4 ? /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/ : /^([0-9a-fA-F:]+)\/(\d{1,3})$/).exec(
    text.trim(),
  );
  if (!m) return fail(`not ${f.name} address/prefix-length`);
  const [, ip, len] = m as unknown as [string, string, string];
  if (!(family === 4 ? isIPv4(ip) : isIPv6(ip))) fail(`'${ip}' is not an ${f.name} address`);
  const prefix = Number(len);
  if (prefix < minPrefix || prefix > maxPrefix)
    fail(`prefix length must be between ${minPrefix} and ${maxPrefix}`);
  const network = ipToBigint(ip, family);
  const extra = network % size({ family, prefix });
  if (extra !== 0n)
    fail(`host bits are set (did you mean ${formatCidr({ family, network: network - extra, prefix })}?)`);
  return { family, network, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${bigintToIp(c.network, c.family)}/${c.prefix}`;
}

/** The n-th address of the block (1 = first host); the last stays unused (IPv4's broadcast). */
export function hostAddress(c: Cidr, n: number): string {
  if (n < 1 || BigInt(n) >= size(c) - 1n) {
    throw labError('LAB_SUBNET_TOO_SMALL', `${formatCidr(c)} has no host number ${n}`);
  }
  return bigintToIp(c.network + BigInt(n), c.family);
}

/** The index-th block of length `prefix` inside `c`. */
export function subnet(c: Cidr, prefix: number, index: number): Cidr {
  if (prefix < c.prefix || index < 0 || BigInt(index) >= 1n << BigInt(prefix - c.prefix)) {
    throw labError(
      'LAB_SUBNET_TOO_SMALL',
      `${formatCidr(c)} has no /${prefix} block number ${index} (use ${FAMILY[c.family].larger})`,
    );
  }
  const block = { family: c.family, prefix };
  return { ...block, network: c.network + BigInt(index) * size(block) };
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.network < b.network + size(b) && b.network < a.network + size(a);
}
