/**
 * The policy route the marks need: packets marked 0x111 (replies on connections the proxy made
 * with a spoofed source) are delivered locally, back to the proxy, instead of leaving the pod.
 */
import { isIPv6 } from 'node:net';
import { TPROXY_MARK, TPROXY_MASK } from '../node/contract.js';
import { type Family, hex, ROUTE_TABLE, RULE_PRIORITY } from './constants.js';
import { exec, execOk, type Place } from './exec.js';

const FWMARK = `${hex(TPROXY_MARK)}/${hex(TPROXY_MASK)}`;
const flag = (f: Family) => (f === 'ipv4' ? '-4' : '-6');
const anyAddress = (f: Family) => (f === 'ipv4' ? '0.0.0.0/0' : '::/0');

/** IPv6 is programmed when the pod has an IPv6 address and IPv6 is not disabled on its `lo`. */
export async function podFamilies(place: Place, podIps?: readonly string[]): Promise<Family[]> {
  const ips = podIps ?? (await globalAddresses(place));
  if (!ips.some((ip) => isIPv6(ip))) return ['ipv4'];
  const r = await exec(place, 'cat', ['/proc/sys/net/ipv6/conf/lo/disable_ipv6']);
  return r.code === 0 && r.stdout.trim() === '0' ? ['ipv4', 'ipv6'] : ['ipv4'];
}

async function globalAddresses(place: Place): Promise<string[]> {
  const out = await execOk(place, 'ip', ['-o', 'addr', 'show', 'scope', 'global']);
  return [...out.matchAll(/\sinet6? ([^/\s]+)\//g)].map((m) => m[1]!);
}

function ruleLine(f: Family): string {
  return `ip ${flag(f)} rule add fwmark ${FWMARK} pref ${RULE_PRIORITY} lookup ${ROUTE_TABLE}`;
}

function routeLine(f: Family): string {
  return `ip ${flag(f)} route add local ${anyAddress(f)} dev lo table ${ROUTE_TABLE}`;
}

async function ruleCount(place: Place, f: Family): Promise<number> {
  const out = await execOk(place, 'ip', [flag(f), 'rule', 'show']);
  return out
    .split('\n')
    .filter((l) => l.startsWith(`${RULE_PRIORITY}:`) && l.includes(`fwmark ${FWMARK} lookup ${ROUTE_TABLE}`))
    .length;
}

async function hasRoute(place: Place, f: Family): Promise<boolean> {
  const r = await exec(place, 'ip', [flag(f), 'route', 'show', 'table', String(ROUTE_TABLE)]);
  return r.code === 0 && /^local default dev lo\b/m.test(r.stdout);
}

/** The policy-route lines (as `ip` commands) that are missing. */
export async function missingRoutes(place: Place, families: readonly Family[]): Promise<string[]> {
  const missing: string[] = [];
  for (const f of families) {
    if ((await ruleCount(place, f)) === 0) missing.push(ruleLine(f));
    if (!(await hasRoute(place, f))) missing.push(routeLine(f));
  }
  return missing;
}

export async function ensureRoutes(place: Place, families: readonly Family[]): Promise<void> {
  for (const f of families) {
    if (!(await hasRoute(place, f))) {
      await execOk(place, 'ip', [
        flag(f),
        'route',
        'add',
        'local',
        anyAddress(f),
        'dev',
        'lo',
        'table',
        String(ROUTE_TABLE),
      ]);
    }
    if ((await ruleCount(place, f)) === 0) {
      await execOk(place, 'ip', [
        flag(f),
        'rule',
        'add',
        'fwmark',
        FWMARK,
        'pref',
        String(RULE_PRIORITY),
        'lookup',
        String(ROUTE_TABLE),
      ]);
    }
  }
}

/** Deletes the rule (every copy) and the local route for both families; absent ones are fine. */
export async function removeRoutes(place: Place): Promise<void> {
  for (const f of ['ipv4', 'ipv6'] as const) {
    const copies = await ruleCount(place, f).catch(() => 0);
    for (let i = 0; i < copies; i++) {
      await execOk(place, 'ip', [
        flag(f),
        'rule',
        'del',
        'fwmark',
        FWMARK,
        'pref',
        String(RULE_PRIORITY),
        'lookup',
        String(ROUTE_TABLE),
      ]);
    }
    if (await hasRoute(place, f)) {
      await execOk(place, 'ip', [
        flag(f),
        'route',
        'del',
        'local',
        anyAddress(f),
        'dev',
        'lo',
        'table',
        String(ROUTE_TABLE),
      ]);
    }
  }
}
