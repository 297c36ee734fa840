/**
 * Reads `iptables-save` output and compares it with a ruleset: what is ours (ISTIO_* chains and
 * every jump into them), what is missing, what is unexpected, and the restore text that repairs it.
 */
import { diffLines } from './diff.js';
import { renderRestore, saveLine, TABLES } from './iptables-render.js';
import type { Ruleset, Table } from './model.js';

export interface SavedRule {
  chain: string;
  /** Everything after `-A CHAIN `. */
  spec: string;
}

export interface SavedTable {
  /** Chain name -> policy (`ACCEPT`, … for built-ins, `-` for user chains), in listing order. */
  chains: Map<string, string>;
  rules: SavedRule[];
}

export type SavedState = Map<string, SavedTable>;

/** A difference, written as `<table>: <line>` so an operator can read it and find it in iptables-save. */
export interface RuleDiff {
  missing: string[];
  unexpected: string[];
}

export function isOurChain(name: string): boolean {
  return name.startsWith('ISTIO_');
}

export function parseSave(text: string): SavedState {
  const state: SavedState = new Map();
  let current: SavedTable | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      current = { chains: new Map(), rules: [] };
      state.set(line.slice(1), current);
    } else if (line === 'COMMIT') {
      current = undefined;
    } else if (current && line.startsWith(':')) {
      const [name, policy] = line.slice(1).split(' ');
      if (name) current.chains.set(name, policy ?? '-');
    } else if (current && line.startsWith('-A ')) {
      const rest = line.slice(3);
      const space = rest.indexOf(' ');
      current.rules.push(
        space < 0 ? { chain: rest, spec: '' } : { chain: rest.slice(0, space), spec: rest.slice(space + 1) },
      );
    }
  }
  return state;
}

function jumpsToOurs(rule: SavedRule): boolean {
  const m = / -[jg] (\S+)/.exec(` ${rule.spec}`);
  return m !== null && isOurChain(m[1]!);
}

/** Our part of a saved table: ISTIO_* chains and every rule in them or jumping into them. */
function ourPart(table: SavedTable | undefined): { chains: string[]; lines: string[] } {
  if (!table) return { chains: [], lines: [] };
  const chains = [...table.chains.keys()].filter(isOurChain);
  const lines = table.rules
    .filter((r) => isOurChain(r.chain) || jumpsToOurs(r))
    .map((r) => `-A ${r.chain} ${r.spec}`);
  return { chains, lines };
}

function chainOf(line: string): string {
  return line.split(' ')[1] ?? '';
}

export function diffState(expected: Ruleset, actual: SavedState): RuleDiff {
  const diff: RuleDiff = { missing: [], unexpected: [] };
  for (const table of TABLES) {
    const want = expected.rules.filter((r) => r.table === table).map((r) => saveLine(r, expected.family));
    const wantChains: string[] = expected.chains[table];
    const have = ourPart(actual.get(table));
    for (const c of wantChains) if (!have.chains.includes(c)) diff.missing.push(`${table}: :${c}`);
    for (const c of have.chains) if (!wantChains.includes(c)) diff.unexpected.push(`${table}: :${c}`);
    const { missing, unexpected } = diffLines(want, have.lines, chainOf);
    diff.missing.push(...missing.map((l) => `${table}: ${l}`));
    diff.unexpected.push(...unexpected.map((l) => `${table}: ${l}`));
  }
  return diff;
}

export function hasOurRules(actual: SavedState): boolean {
  return TABLES.some((t) => {
    const part = ourPart(actual.get(t));
    return part.chains.length > 0 || part.lines.length > 0;
  });
}

/**
 * Restore commands that take out every jump into an ISTIO_* chain and empty those chains, deleting
 * the ones not in `keep` (kept chains are refilled in the same commit).
 */
function removalLines(table: SavedTable, keep: readonly string[] = []): string[] {
  const lines: string[] = [];
  for (const r of table.rules)
    if (!isOurChain(r.chain) && jumpsToOurs(r)) lines.push(`-D ${r.chain} ${r.spec}`);
  const ours = [...table.chains.keys()].filter(isOurChain);
  for (const c of ours) lines.push(`-F ${c}`);
  for (const c of ours) if (!keep.includes(c)) lines.push(`-X ${c}`);
  return lines;
}

/** Restore input that removes everything of ours; empty when there is nothing to remove. */
export function removalText(actual: SavedState, tables: readonly string[] = TABLES): string {
  const out: string[] = [];
  for (const name of tables) {
    const table = actual.get(name);
    if (!table) continue;
    const lines = removalLines(table);
    if (lines.length === 0) continue;
    out.push(`*${name}`, ...lines, 'COMMIT');
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/**
 * Restore input that replaces whatever of ours is there with the expected ruleset. Each table is
 * committed atomically, so traffic sees the old rules or the new ones, never neither.
 */
export function replaceText(expected: Ruleset, actual: SavedState): string {
  const removal = new Map<Table, string[]>();
  for (const table of TABLES) {
    const saved = actual.get(table);
    if (saved) removal.set(table, removalLines(saved, expected.chains[table]));
  }
  const fresh = renderRestore(expected).split('\n');
  const out: string[] = [];
  let table: Table | undefined;
  for (const line of fresh) {
    if (line.startsWith('*')) {
      table = line.slice(1) as Table;
      out.push(line, ...(removal.get(table) ?? []));
      removal.delete(table);
    } else if (line !== '') out.push(line);
  }
  for (const [name, lines] of removal) if (lines.length) out.push(`*${name}`, ...lines, 'COMMIT');
  return `${out.join('\n')}\n`;
}
