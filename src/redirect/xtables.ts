/**
 * Which iptables the node uses (legacy or nf_tables). Pods must be programmed with the same one:
 * the two keep separate rule sets in the kernel, and mixing them splits the ruleset in two.
 */

import type { Family } from './constants.js';
import { redirectError } from './errors.js';
import { exec, findTool, type Place } from './exec.js';

export type XtablesVariant = 'legacy' | 'nft' | 'default';

export interface Xtables {
  variant: XtablesVariant;
  save(family: Family): string;
  restore(family: Family): string;
  /** The rule-editing binary (`iptables-nft`, …), for the host's ipset-less operations. */
  binary(family: Family): string;
}

export function xtables(variant: XtablesVariant): Xtables {
  const suffix = variant === 'default' ? '' : `-${variant}`;
  const base = (family: Family) => (family === 'ipv4' ? 'iptables' : 'ip6tables');
  return {
    variant,
    save: (f) => `${base(f)}${suffix}-save`,
    restore: (f) => `${base(f)}${suffix}-restore`,
    binary: (f) => `${base(f)}${suffix}`,
  };
}

export function parseVariant(value: string): XtablesVariant {
  if (value === 'legacy' || value === 'nft' || value === 'default') return value;
  throw redirectError(
    'ERR_REDIRECT_BAD_OPTION',
    `unknown iptables variant '${value}': use legacy, nft or default`,
  );
}

/**
 * Legacy when the node already has legacy rules, else nft when installed, else whatever `iptables`
 * is (istio's order). `AMBIT_IPTABLES=legacy|nft` overrides, like istio's FORCE_IPTABLES_BINARY.
 */
export async function detectXtables(node: Place, env = process.env): Promise<Xtables> {
  if (env['AMBIT_IPTABLES']) return xtables(parseVariant(env['AMBIT_IPTABLES']));
  if (findTool(node, 'iptables-legacy-save')) {
    const r = await exec(node, 'iptables-legacy-save', []);
    if (r.code === 0 && /^-A /m.test(r.stdout)) return xtables('legacy');
  }
  if (findTool(node, 'iptables-nft-save')) return xtables('nft');
  return xtables('default');
}
