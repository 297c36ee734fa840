/**
 * `ambit doctor`: the seed's "Observing and debugging traffic redirection" checks, automated.
 * Checks run in the seed's order and each runs even when an earlier one failed, so the report
 * shows every symptom; the first failure is usually the cause of the rest.
 */
import { checkAnnotation } from './checks/annotation.js';
import { checkListeners } from './checks/listeners.js';
import { checkProbe } from './checks/probe.js';
import { checkRules } from './checks/rules.js';
import { checkZtunnel } from './checks/ztunnel.js';
import { gatherContext } from './context.js';
import type { CheckResult, DoctorReport, DoctorTarget } from './types.js';

export { formatReport } from './report.js';
export { type LabTargetOptions, labTarget, type NodeTargetOptions, nodeTarget } from './target.js';
export type { CheckId, CheckResult, CheckStatus, DoctorHints, DoctorReport, DoctorTarget } from './types.js';

export async function runDoctor(target: DoctorTarget): Promise<DoctorReport> {
  const ctx = await gatherContext(target);
  const checks: CheckResult[] = [
    checkZtunnel(ctx),
    await checkListeners(ctx),
    await checkRules(ctx),
    await checkAnnotation(ctx),
    await checkProbe(ctx),
  ];
  return {
    pod: `${target.namespace}/${target.name}`,
    // Healthy means every check ran and passed: a check that could not run proves nothing.
    ok: checks.every((c) => c.status === 'pass'),
    checks,
  };
}
