/** The default backend: the ruleset applied with iptables-restore --noflush, one commit per table. */
import type { Family } from './constants.js';
import { execOk, type Place } from './exec.js';
import { TABLES } from './iptables-render.js';
import {
  diffState,
  hasOurRules,
  parseSave,
  type RuleDiff,
  removalText,
  replaceText,
  type SavedState,
} from './iptables-state.js';
import type { Ruleset } from './model.js';
import type { Xtables } from './xtables.js';

/** What a backend does to the rules inside one netns; the redirector adds routes and rollback. */
export interface RuleBackend {
  tools(families: readonly Family[]): string[];
  /** Missing and unexpected rules, and whether any rule of ours is present at all. */
  inspect(place: Place, rulesets: readonly Ruleset[]): Promise<RuleDiff & { present: boolean }>;
  /** Replaces whatever of ours is there with the rulesets, atomically per table. */
  write(place: Place, rulesets: readonly Ruleset[]): Promise<void>;
  /** Removes every rule and chain of ours in both families; rules that are not ours stay. */
  remove(place: Place): Promise<void>;
}

const LOCK_WAIT = ['-w', '5'];

export function iptablesBackend(xt: Xtables): RuleBackend {
  const save = async (place: Place, family: Family): Promise<SavedState> =>
    parseSave(await execOk(place, xt.save(family), []));
  const label = (family: Family, lines: string[]) =>
    family === 'ipv4' ? lines : lines.map((l) => `(ipv6) ${l}`);

  return {
    tools: (families) => families.flatMap((f) => [xt.save(f), xt.restore(f)]),

    async inspect(place, rulesets) {
      const out = { missing: [] as string[], unexpected: [] as string[], present: false };
      for (const ruleset of rulesets) {
        const state = await save(place, ruleset.family);
        const d = diffState(ruleset, state);
        out.missing.push(...label(ruleset.family, d.missing));
        out.unexpected.push(...label(ruleset.family, d.unexpected));
        out.present ||= hasOurRules(state);
      }
      return out;
    },

    async write(place, rulesets) {
      for (const ruleset of rulesets) {
        const text = replaceText(ruleset, await save(place, ruleset.family));
        await execOk(place, xt.restore(ruleset.family), ['--noflush', ...LOCK_WAIT], text);
      }
    },

    async remove(place) {
      for (const family of ['ipv4', 'ipv6'] as const) {
        let state: SavedState;
        try {
          state = await save(place, family);
        } catch (err) {
          // ip6tables fails where the kernel has no IPv6: then there is nothing of ours to remove.
          if (family === 'ipv6') continue;
          throw err;
        }
        const text = removalText(state, TABLES);
        if (text) await execOk(place, xt.restore(family), ['--noflush', ...LOCK_WAIT], text);
      }
    },
  };
}
