/**
 * Host probe rules in the node netns: kubelet's TCP to enrolled pod IPs leaves with source
 * 169.254.7.127 (fd16:…:ffff for IPv6), which the pod rules let through untouched, so health
 * probes reach the app instead of the proxy. Pod IPs live in one ipset per family, comment = pod UID.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { type Family, probeSetName } from './constants.js';
import { redirectError } from './errors.js';
import { execOk, type Place, requireTools } from './exec.js';
import { diffState, parseSave, removalText, replaceText } from './iptables-state.js';
import { hostProbeRuleset } from './model.js';
import type { Xtables } from './xtables.js';

const FAMILIES: readonly Family[] = ['ipv4', 'ipv6'];

function familyOf(ip: string): Family {
  if (isIPv4(ip)) return 'ipv4';
  if (isIPv6(ip)) return 'ipv6';
  throw redirectError(
    'ERR_REDIRECT_BAD_IP',
    `'${ip}' is not an IP address: pass the pod's IPv4 or IPv6 address`,
  );
}

export interface HostProbes {
  /** Creates both sets and the ISTIO_POSTRT rules (idempotent; replaces drifted rules). */
  install(): Promise<void>;
  /** Deletes the rules and destroys the sets. */
  uninstall(): Promise<void>;
  /** Adds or re-owns `ip` for pod `uid` (a new pod reusing an IP takes it over). */
  addPodIp(uid: string, ip: string): Promise<void>;
  /** Deletes `ip` only if it still belongs to `uid`; returns whether it did. */
  removePodIp(uid: string, ip: string): Promise<boolean>;
  /**
   * Deletes every entry whose comment is `uid`, whatever IPs the pod's status shows now (the set,
   * not the status, records what was added for the pod); returns the IPs deleted.
   */
  removePod(uid: string): Promise<string[]>;
  /** Current entries: ip -> pod UID. */
  entries(): Promise<Map<string, string>>;
}

export function hostProbes(node: Place, xt: Xtables): HostProbes {
  const ensureTools = () =>
    requireTools(node, ['ipset', ...FAMILIES.flatMap((f) => [xt.save(f), xt.restore(f)])]);

  async function listSet(family: Family): Promise<Map<string, string>> {
    const out = await execOk(node, 'ipset', ['save', probeSetName(family)]);
    const entries = new Map<string, string>();
    for (const m of out.matchAll(/^add \S+ (\S+)(?: comment "([^"]*)")?/gm)) entries.set(m[1]!, m[2] ?? '');
    return entries;
  }

  return {
    async install() {
      ensureTools();
      for (const family of FAMILIES) {
        const inet = family === 'ipv4' ? 'inet' : 'inet6';
        await execOk(node, 'ipset', [
          'create',
          probeSetName(family),
          'hash:ip',
          'family',
          inet,
          'comment',
          '-exist',
        ]);
        const ruleset = hostProbeRuleset(family);
        const state = parseSave(await execOk(node, xt.save(family), []));
        const d = diffState(ruleset, state);
        if (d.missing.length || d.unexpected.length) {
          await execOk(node, xt.restore(family), ['--noflush', '-w', '5'], replaceText(ruleset, state));
        }
      }
    },

    async uninstall() {
      ensureTools();
      for (const family of FAMILIES) {
        const text = removalText(parseSave(await execOk(node, xt.save(family), [])), ['nat']);
        if (text) await execOk(node, xt.restore(family), ['--noflush', '-w', '5'], text);
        await execOk(node, 'ipset', ['destroy', probeSetName(family)]).catch(() => undefined);
      }
    },

    async addPodIp(uid, ip) {
      const family = familyOf(ip);
      await execOk(node, 'ipset', ['add', probeSetName(family), ip, 'comment', uid, '-exist']);
    },

    async removePodIp(uid, ip) {
      const family = familyOf(ip);
      const owner = (await listSet(family)).get(ip);
      if (owner !== uid) return false;
      await execOk(node, 'ipset', ['del', probeSetName(family), ip, '-exist']);
      return true;
    },

    async removePod(uid) {
      const removed: string[] = [];
      for (const family of FAMILIES) {
        for (const [ip, owner] of await listSet(family)) {
          if (owner !== uid) continue;
          await execOk(node, 'ipset', ['del', probeSetName(family), ip, '-exist']);
          removed.push(ip);
        }
      }
      return removed;
    },

    async entries() {
      const all = new Map<string, string>();
      for (const family of FAMILIES) for (const [ip, uid] of await listSet(family)) all.set(ip, uid);
      return all;
    },
  };
}
