/**
 * The plugin -> agent event (`POST /cmdadd` on `pluginevent.sock`), with istio-cni's JSON body:
 * Go's default field names, net.IPNet as {IP, Mask(base64 of the mask bytes)}, Interface nullable.
 */
import { isIP } from 'node:net';
import { unmapIPv4 } from '../net/ip.js';
import { cniInputError } from './errors.js';

export interface WireIpConfig {
  Interface: number | null;
  Address: { IP: string; Mask: string };
  Gateway: string;
}

export interface WireCniEvent {
  Netns: string;
  PodName: string;
  PodNamespace: string;
  IPs: WireIpConfig[];
}

/** What the agent's handler receives: plain strings, IPv4-mapped addresses already unmapped. */
export interface CniAddEvent {
  netns: string;
  podName: string;
  podNamespace: string;
  ips: string[];
}

export const CMDADD_PATH = '/cmdadd';
export const STATUS_PATH = '/status';

function maskBytes(prefix: number, family: 4 | 6): Buffer {
  const bytes = Buffer.alloc(family === 4 ? 4 : 16);
  for (let i = 0; i < prefix; i++) bytes[i >> 3]! |= 0x80 >> (i & 7);
  return bytes;
}

/** The event IPs from a CNI result's `ips` (`address` is CIDR); entries that do not parse are an error. */
export function wireIps(ips: unknown): WireIpConfig[] {
  if (ips === undefined || ips === null) return [];
  if (!Array.isArray(ips)) throw cniInputError('CNI_RESULT_INVALID', "prevResult 'ips' must be an array");
  return ips.map((entry, i) => {
    const e = (entry ?? {}) as Record<string, unknown>;
    const m = typeof e['address'] === 'string' ? /^(.+)\/(\d{1,3})$/.exec(e['address']) : null;
    const ip = m ? unmapIPv4(m[1]!) : '';
    const family = isIP(ip);
    const prefix = m ? Number(m[2]) : -1;
    if (family === 0 || prefix > (family === 4 ? 32 : 128)) {
      throw cniInputError(
        'CNI_RESULT_INVALID',
        `prevResult ips[${i}].address is not an IP/prefix: ${JSON.stringify(e['address'])}`,
      );
    }
    return {
      Interface: typeof e['interface'] === 'number' ? e['interface'] : null,
      Address: { IP: ip, Mask: maskBytes(prefix, family as 4 | 6).toString('base64') },
      Gateway: typeof e['gateway'] === 'string' ? e['gateway'] : '',
    };
  });
}

/** Validates a decoded body from the wire; throws EVENT_INVALID naming the bad field. */
export function parseCniEvent(value: unknown): CniAddEvent {
  const fail = (why: string): never => {
    throw cniInputError('EVENT_INVALID', `invalid CNI event: ${why}`);
  };
  if (!value || typeof value !== 'object' || Array.isArray(value)) return fail('body is not a JSON object');
  const v = value as Record<string, unknown>;
  for (const key of ['Netns', 'PodName', 'PodNamespace'] as const) {
    if (typeof v[key] !== 'string' || v[key] === '') fail(`'${key}' must be a non-empty string`);
  }
  const ips = v['IPs'] ?? [];
  if (!Array.isArray(ips)) return fail("'IPs' must be an array");
  return {
    netns: v['Netns'] as string,
    podName: v['PodName'] as string,
    podNamespace: v['PodNamespace'] as string,
    ips: ips.map((entry, i) => {
      const addr = (entry as { Address?: { IP?: unknown } } | null)?.Address?.IP;
      const ip = typeof addr === 'string' ? unmapIPv4(addr) : '';
      if (isIP(ip) === 0) fail(`IPs[${i}].Address.IP is not an IP address: ${JSON.stringify(addr)}`);
      return ip;
    }),
  };
}
