/** Seed: "the proxy has received the netns ... and has started proxying for it" = workloadState Up. */
import { type DoctorContext, staleProxyNetns } from '../context.js';
import type { CheckResult } from '../types.js';

const title = 'ztunnel received the pod netns and started its proxy';

export function checkZtunnel(ctx: DoctorContext): CheckResult {
  const { target: t, dump } = ctx;
  const pod = `${t.namespace}/${t.name}`;
  if (!dump) {
    return {
      id: 'ztunnel',
      title,
      status: 'fail',
      detail: ctx.dumpError ?? 'no config dump',
      cause:
        "ztunnel is not running on the pod's node, or its admin server listens elsewhere (--ztunnel-admin)",
      next: t.hints.ztunnelLogs,
    };
  }
  const entries = Object.entries(dump.workloadState ?? {});
  const found = t.uid
    ? entries.find(([uid]) => uid === t.uid)
    : entries.find(([, e]) => e.info.namespace === t.namespace && e.info.name === t.name);
  if (!found) {
    const known = entries.map(([, e]) => `${e.info.namespace}/${e.info.name}`).join(', ') || 'none';
    return {
      id: 'ztunnel',
      title,
      status: 'fail',
      detail: `ztunnel has no proxy for ${pod}${t.uid ? ` (uid ${t.uid})` : ''}; pods it knows: ${known}`,
      cause:
        'the node agent never sent the pod to ztunnel: the pod is not in an ambient namespace, or enrolling it failed',
      next: t.hints.agentLogs,
    };
  }
  const [uid, entry] = found;
  if (entry.state !== 'Up') {
    return {
      id: 'ztunnel',
      title,
      status: 'fail',
      detail: `ztunnel received the netns of ${pod} (uid ${uid}) but its proxy is ${entry.state}`,
      cause:
        'ztunnel could not open the pod listeners (a port is taken, or the netns is gone) and keeps retrying',
      next: `${t.hints.ztunnelLogs} | grep -e '${uid}' -e 'retrying workload'`,
    };
  }
  const stale = staleProxyNetns(ctx);
  if (stale) {
    return {
      id: 'ztunnel',
      title,
      status: 'fail',
      detail: `ztunnel's proxy for ${pod} (uid ${uid}) is Up in netns inode ${stale.proxy}, but the pod's netns ${t.podNetns} is inode ${stale.pod}`,
      cause:
        "ztunnel was handed a stale netns of the pod (a sandbox torn down or replaced): its listeners are not in the pod, so the pod's captured traffic fails",
      next: t.hints.agentLogs,
    };
  }
  return {
    id: 'ztunnel',
    title,
    status: 'pass',
    detail: `pod WorkloadUid("${uid}") is Up (service account ${entry.info.serviceAccount})`,
  };
}
