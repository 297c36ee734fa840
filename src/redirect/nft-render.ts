/**
 * Renders the model as one `nft -f` transaction in `inet` tables (istio-cni's layout): each table is
 * added and flushed in the same transaction, so applying again replaces rather than duplicates.
 */
import { type Family, hex } from './constants.js';
import type { AddressMatch, ChainName, Match, Rule, Ruleset, Table, Target } from './model.js';

export const NFT_TABLES: Record<Table, string> = {
  mangle: 'istio-ambient-mangle',
  nat: 'istio-ambient-nat',
  raw: 'istio-ambient-raw',
};

const CHAINS: Record<ChainName, string> = {
  PREROUTING: 'prerouting',
  OUTPUT: 'output',
  POSTROUTING: 'postrouting',
  ISTIO_PRERT: 'istio-prerouting',
  ISTIO_OUTPUT: 'istio-output',
  ISTIO_POSTRT: 'istio-postrouting',
};

/** Base chains: hooks and priorities as istio-cni's nftables backend (mangle output is `route` so a restored mark re-routes). */
const BASE_CHAINS: Record<Table, Partial<Record<ChainName, string>>> = {
  mangle: {
    PREROUTING: 'type filter hook prerouting priority -150; policy accept;',
    OUTPUT: 'type route hook output priority -150; policy accept;',
  },
  nat: {
    PREROUTING: 'type nat hook prerouting priority -100; policy accept;',
    OUTPUT: 'type nat hook output priority -100; policy accept;',
    POSTROUTING: 'type nat hook postrouting priority 100; policy accept;',
  },
  raw: {
    PREROUTING: 'type filter hook prerouting priority -300; policy accept;',
    OUTPUT: 'type filter hook output priority -300; policy accept;',
  },
};

const ip = (f: Family) => (f === 'ipv4' ? 'ip' : 'ip6');

function address(f: Family, dir: 'saddr' | 'daddr', m: AddressMatch): string {
  const full = f === 'ipv4' ? 32 : 128;
  return `${ip(f)} ${dir} ${m.negate ? '!= ' : ''}${m.prefix === full ? m.address : `${m.address}/${m.prefix}`}`;
}

/** `value` within `mask` replaces those bits and keeps the others (iptables' value/mask). */
function setBits(what: string, value: number, mask: number): string {
  return `${what} set ${what} & ${hex(~mask >>> 0)} | ${hex(value)}`;
}

function match(m: Match): string | undefined {
  switch (m.kind) {
    case 'tcp':
      return m.dport === undefined ? undefined : `tcp dport ${m.negateDport ? '!= ' : ''}${m.dport}`;
    case 'udp':
      return (
        [
          ...(m.dport === undefined ? [] : [`udp dport ${m.dport}`]),
          ...(m.sport === undefined ? [] : [`udp sport ${m.sport}`]),
        ].join(' ') || undefined
      );
    case 'mark':
      return `meta mark & ${hex(m.mask)} ${m.negate ? '!=' : '=='} ${hex(m.value)}`;
    case 'connmark':
      return `ct mark & ${hex(m.mask)} == ${hex(m.value)}`;
    case 'ctstate':
      return `ct state ${m.states.map((s) => s.toLowerCase()).join(',')}`;
    case 'socket-exists':
    case 'set-dst':
      throw new Error(`nftables rendering of '${m.kind}' is not supported (host probe rules use iptables)`);
  }
}

function target(t: Target, f: Family): string {
  switch (t.kind) {
    case 'accept':
      return 'accept';
    case 'jump':
      return `jump ${CHAINS[t.chain]}`;
    case 'connmark-set':
      return setBits('ct mark', t.value, t.mask);
    case 'connmark-restore':
      return 'meta mark set ct mark';
    case 'tproxy':
      // nft's tproxy does not mark or end evaluation by itself: both are explicit.
      return `${setBits('meta mark', t.mark, t.mask)} tproxy ${ip(f)} to :${t.port} accept`;
    case 'redirect':
      return `redirect to :${t.port}`;
    case 'snat':
      return `snat ${ip(f)} to ${t.to}`;
    case 'ct-zone':
      return `ct zone set ${t.zone}`;
  }
}

export function nftRule(rule: Rule, f: Family): string {
  const parts: string[] = [];
  if (rule.inInterface) parts.push(`iifname "${rule.inInterface}"`);
  if (rule.outInterface) parts.push(`oifname ${rule.negateOutInterface ? '!= ' : ''}"${rule.outInterface}"`);
  if (rule.source) parts.push(address(f, 'saddr', rule.source));
  if (rule.destination) parts.push(address(f, 'daddr', rule.destination));
  if (rule.protocol) parts.push(`meta l4proto ${rule.protocol}`);
  for (const m of rule.matches) {
    const text = match(m);
    if (text) parts.push(text);
  }
  parts.push(target(rule.target, f));
  return parts.join(' ');
}

/**
 * One transaction for all families. `inet` tables see both families, so a rule that renders the
 * same for IPv4 and IPv6 is written once; family-specific ones follow their IPv4 counterpart.
 */
export function renderNft(rulesets: readonly Ruleset[]): string {
  const [first, ...others] = rulesets;
  if (!first) return '';
  const out: string[] = [];
  for (const table of ['mangle', 'nat', 'raw'] as const) {
    const rules = first.rules.filter((r) => r.table === table);
    if (rules.length === 0) continue;
    const name = NFT_TABLES[table];
    out.push(`add table inet ${name}`, `flush table inet ${name}`);
    const used = new Set<ChainName>(first.chains[table]);
    for (const r of rules) used.add(r.chain);
    for (const [chain, spec] of Object.entries(BASE_CHAINS[table]) as [ChainName, string][]) {
      if (used.has(chain)) out.push(`add chain inet ${name} ${CHAINS[chain]} { ${spec} }`);
    }
    for (const chain of first.chains[table]) out.push(`add chain inet ${name} ${CHAINS[chain]}`);
    const otherRules = others.map((o) => o.rules.filter((r) => r.table === table));
    rules.forEach((rule, i) => {
      const text = nftRule(rule, first.family);
      out.push(`add rule inet ${name} ${CHAINS[rule.chain]} ${text}`);
      for (const [j, other] of otherRules.entries()) {
        const counterpart = other[i];
        const family = others[j]!.family;
        if (!counterpart) continue;
        const otherText = nftRule(counterpart, family);
        if (otherText !== text) out.push(`add rule inet ${name} ${CHAINS[counterpart.chain]} ${otherText}`);
      }
    });
  }
  return `${out.join('\n')}\n`;
}

/** A transaction that deletes our tables whether or not they exist (add first makes delete safe). */
export function renderNftRemoval(): string {
  return `${Object.values(NFT_TABLES)
    .flatMap((t) => [`add table inet ${t}`, `delete table inet ${t}`])
    .join('\n')}\n`;
}
