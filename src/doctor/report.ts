/** The human form of a doctor report: one PASS/FAIL/SKIP line per check, cause and next step on failure. */
import type { DoctorReport } from './types.js';

const MARK = { pass: 'PASS', fail: 'FAIL', skip: 'SKIP' } as const;

export function formatReport(report: DoctorReport): string {
  const out = [`ambit doctor ${report.pod}`, ''];
  for (const c of report.checks) {
    out.push(`${MARK[c.status]}  ${c.title}`);
    out.push(`      ${c.detail}`);
    for (const line of c.lines ?? []) if (c.status === 'fail') out.push(`        ${line}`);
    if (c.status === 'fail') {
      if (c.cause) out.push(`      likely cause: ${c.cause}`);
      if (c.next) out.push(`      next: ${c.next}`);
    }
  }
  const count = (s: string) => report.checks.filter((c) => c.status === s).length;
  out.push('');
  out.push(`${count('pass')} passed, ${count('fail')} failed, ${count('skip')} skipped: ${verdict(report)}`);
  return `${out.join('\n')}\n`;
}

function verdict(report: DoctorReport): string {
  if (report.ok) return 'redirection for this pod looks healthy';
  const failed = report.checks.find((c) => c.status === 'fail');
  if (failed) return `start with the first failure (${failed.id})`;
  const skipped = report.checks.find((c) => c.status === 'skip');
  return `not every check could run (${skipped?.id}): give it what it needs and run again`;
}
