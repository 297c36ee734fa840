/** Expected-vs-actual comparison of rule lines, shared by the backends. */

function minus(a: readonly string[], b: readonly string[]): string[] {
  const left = [...b];
  const out: string[] = [];
  for (const x of a) {
    const i = left.indexOf(x);
    if (i >= 0) left.splice(i, 1);
    else out.push(x);
  }
  return out;
}

/**
 * Lines in `want` but not in `have` (missing) and the reverse (unexpected). When both hold the same
 * lines in another order, the reordered groups (chains) are reported whole: order decides capture.
 */
export function diffLines(
  want: readonly string[],
  have: readonly string[],
  groupOf: (line: string) => string,
): { missing: string[]; unexpected: string[] } {
  const missing = minus(want, have);
  const unexpected = minus(have, want);
  if (missing.length === 0 && unexpected.length === 0) {
    for (const group of new Set([...want, ...have].map(groupOf))) {
      const w = want.filter((l) => groupOf(l) === group);
      const h = have.filter((l) => groupOf(l) === group);
      if (w.join('\n') !== h.join('\n')) {
        missing.push(...w);
        unexpected.push(...h);
      }
    }
  }
  return { missing, unexpected };
}
