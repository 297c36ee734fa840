/**
 * Renders the model as `iptables-restore` input. Each rule is written exactly as `iptables-save`
 * prints it back, so verifying is a plain comparison of lines.
 */
import { type Family, hex } from './constants.js';
import type { AddressMatch, Match, Rule, Ruleset, Table, Target } from './model.js';

export const TABLES: readonly Table[] = ['mangle', 'nat', 'raw'];

function address(flag: string, m: AddressMatch): string {
  return `${m.negate ? '! ' : ''}${flag} ${m.address}/${m.prefix}`;
}

function match(m: Match): string {
  switch (m.kind) {
    case 'tcp':
      return m.dport === undefined ? '-m tcp' : `-m tcp ${m.negateDport ? '! ' : ''}--dport ${m.dport}`;
    case 'udp':
      return `-m udp${m.dport === undefined ? '' : ` --dport ${m.dport}`}${m.sport === undefined ? '' : ` --sport ${m.sport}`}`;
    case 'mark':
      return `-m mark ${m.negate ? '! ' : ''}--mark ${hex(m.value)}/${hex(m.mask)}`;
    case 'connmark':
      return `-m connmark --mark ${hex(m.value)}/${hex(m.mask)}`;
    case 'ctstate':
      return `-m conntrack --ctstate ${m.states.join(',')}`;
    case 'socket-exists':
      return '-m owner --socket-exists';
    case 'set-dst':
      return `-m set --match-set ${m.set} dst`;
  }
}

function target(t: Target, family: Family): string {
  switch (t.kind) {
    case 'accept':
      return '-j ACCEPT';
    case 'jump':
      return `-j ${t.chain}`;
    case 'connmark-set':
      return `-j CONNMARK --set-xmark ${hex(t.value)}/${hex(t.mask)}`;
    case 'connmark-restore':
      return `-j CONNMARK --restore-mark --nfmask ${hex(t.nfmask)} --ctmask ${hex(t.ctmask)}`;
    case 'tproxy':
      return `-j TPROXY --on-port ${t.port} --on-ip ${family === 'ipv4' ? '0.0.0.0' : '::'} --tproxy-mark ${hex(t.mark)}/${hex(t.mask)}`;
    case 'redirect':
      return `-j REDIRECT --to-ports ${t.port}`;
    case 'snat':
      return `-j SNAT --to-source ${t.to}`;
    case 'ct-zone':
      return `-j CT --zone ${t.zone}`;
  }
}

/** The rule's spec after `-A CHAIN`, in iptables-save's canonical option order. */
export function ruleSpec(rule: Rule, family: Family): string {
  const parts: string[] = [];
  if (rule.source) parts.push(address('-s', rule.source));
  if (rule.destination) parts.push(address('-d', rule.destination));
  if (rule.inInterface) parts.push(`-i ${rule.inInterface}`);
  if (rule.outInterface) parts.push(`${rule.negateOutInterface ? '! ' : ''}-o ${rule.outInterface}`);
  if (rule.protocol) parts.push(`-p ${rule.protocol}`);
  for (const m of rule.matches) parts.push(match(m));
  parts.push(target(rule.target, family));
  return parts.join(' ');
}

/** `-A CHAIN spec`, the line iptables-save prints for the rule. */
export function saveLine(rule: Rule, family: Family): string {
  return `-A ${rule.chain} ${ruleSpec(rule, family)}`;
}

/** Restore input that creates the ruleset from nothing (one block per table that has rules). */
export function renderRestore(ruleset: Ruleset): string {
  const out: string[] = [];
  for (const table of TABLES) {
    const rules = ruleset.rules.filter((r) => r.table === table);
    if (rules.length === 0) continue;
    out.push(`*${table}`);
    for (const chain of ruleset.chains[table]) out.push(`:${chain} - [0:0]`);
    for (const rule of rules) {
      const spec = ruleSpec(rule, ruleset.family);
      out.push(rule.first ? `-I ${rule.chain} 1 ${spec}` : `-A ${rule.chain} ${spec}`);
    }
    out.push('COMMIT');
  }
  return `${out.join('\n')}\n`;
}
