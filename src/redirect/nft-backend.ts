/** The nftables backend: our `inet` tables, replaced or deleted in one `nft -f` transaction each time. */
import type { Family } from './constants.js';
import { diffLines } from './diff.js';
import { execOk, type Place } from './exec.js';
import type { RuleBackend } from './iptables-backend.js';
import type { Ruleset } from './model.js';
import { renderNft, renderNftRemoval } from './nft-render.js';

const TABLE_PREFIX = 'istio-ambient-';

/** `table chain: statement` lines of an `nft list` output, without counters and handles. */
export function parseNftListing(text: string): string[] {
  const lines: string[] = [];
  let table = '';
  let chain = '';
  for (const raw of text.split('\n')) {
    const line = raw
      .replace(/\s*# handle \d+$/, '')
      .replace(/\bcounter packets \d+ bytes \d+ ?/, '')
      .trim();
    const tableHead = /^table inet (\S+) \{$/.exec(line);
    const chainHead = /^chain (\S+) \{$/.exec(line);
    if (tableHead) table = tableHead[1]!;
    else if (chainHead) chain = chainHead[1]!;
    else if (line !== '}' && line !== '') lines.push(`${table} ${chain}: ${line}`);
  }
  return lines;
}

const groupOf = (line: string) => line.slice(0, line.indexOf(':'));

export function nftBackend(): RuleBackend {
  async function ourTables(place: Place): Promise<string[]> {
    const out = await execOk(place, 'nft', ['list', 'tables']);
    return [...out.matchAll(/^table inet (\S+)$/gm)]
      .map((m) => m[1]!)
      .filter((t) => t.startsWith(TABLE_PREFIX));
  }

  /** nft prints rules in its own canonical form; loading ours in a throw-away netns gives that form. */
  async function canonical(rulesets: readonly Ruleset[]): Promise<string[]> {
    const script = renderNft(rulesets);
    const tables = [...script.matchAll(/^add table inet (\S+)$/gm)].map((m) => m[1]!);
    // Listing in the same `nft -f` run shows the rules before the batch commits: list afterwards.
    const list = tables.map((t) => ` && nft list table inet ${t}`).join('');
    const out = await execOk(
      { netns: null, path: process.env.PATH ?? '' },
      'unshare',
      ['--net', '--', 'sh', '-c', `nft -f -${list}`],
      script,
    );
    return parseNftListing(out);
  }

  return {
    tools: (_families: readonly Family[]) => ['nft', 'unshare'],

    async inspect(place, rulesets) {
      const want = await canonical(rulesets);
      const have: string[] = [];
      const present = await ourTables(place);
      for (const t of present)
        have.push(...parseNftListing(await execOk(place, 'nft', ['list', 'table', 'inet', t])));
      return { ...diffLines(want, have, groupOf), present: present.length > 0 };
    },

    async write(place, rulesets) {
      const stale = (await ourTables(place)).filter(
        (t) => !renderNft(rulesets).includes(`add table inet ${t}\n`),
      );
      const drop = stale.map((t) => `delete table inet ${t}\n`).join('');
      await execOk(place, 'nft', ['-f', '-'], `${renderNft(rulesets)}${drop}`);
    },

    async remove(place) {
      await execOk(place, 'nft', ['-f', '-'], renderNftRemoval());
    },
  };
}
