/** Seed: "Check the iptables rules setup": the in-pod rules equal the expected ruleset, diff otherwise. */
import { errorMessage } from '../../errors.js';
import { createRedirector } from '../../redirect/index.js';
import { ambitCommand } from '../../runtime/invocation.js';
import type { DoctorContext } from '../context.js';
import type { CheckResult } from '../types.js';

const title = 'in-pod redirection rules equal the expected ruleset';

export async function checkRules(ctx: DoctorContext): Promise<CheckResult> {
  const t = ctx.target;
  const verifyCmd = `${ambitCommand()} redirect verify --netns ${t.hints.netnsArg} --backend ${t.backend} --inbound ${t.inbound}`;
  try {
    const redirector = createRedirector({
      backend: t.backend,
      inbound: t.inbound,
      dnsCapture: t.dnsCapture,
      nodeNetns: t.nodeNetns,
    });
    const result = await redirector.verify(t.podNetns, t.podIps);
    if (result.ok) {
      return {
        id: 'rules',
        title,
        status: 'pass',
        detail: `${t.backend} ${t.inbound} ruleset and policy route present (${result.families.join(', ')})`,
      };
    }
    const lines = [
      ...result.missing.map((r) => `missing:    ${r}`),
      ...result.unexpected.map((r) => `unexpected: ${r}`),
    ];
    const none = result.unexpected.length === 0 && result.missing.length > 0 && lines.length > 8;
    return {
      id: 'rules',
      title,
      status: 'fail',
      detail: `${result.missing.length} rule(s) missing, ${result.unexpected.length} unexpected`,
      lines,
      cause: none
        ? 'the pod has no redirection rules: the node agent has not enrolled it (or removed it)'
        : 'the rules were changed after the node agent installed them (another tool, or a manual edit)',
      next: `${verifyCmd}   # then repair: ${ambitCommand()} redirect reconcile --netns ${t.hints.netnsArg}`,
    };
  } catch (err) {
    return {
      id: 'rules',
      title,
      status: 'fail',
      detail: errorMessage(err),
      cause: 'the rules could not be read (missing tool or netns gone)',
      next: `${t.hints.inPod} iptables-save`,
    };
  }
}
