/**
 * Pod cgroups as a kubelet's cgroupfs driver makes them (`…/kubepods/pod<uid>`), under the lab's own
 * subtree of the cgroup v2 hierarchy, so the agent's /proc scan attributes pod processes by UID.
 */
import { existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';

/** The cgroup v2 mount: the hybrid layout's `unified`, else the pure v2 root. */
export function cgroupV2Root(): string {
  return existsSync('/sys/fs/cgroup/unified/cgroup.procs') ? '/sys/fs/cgroup/unified' : '/sys/fs/cgroup';
}

export function labCgroup(lab: string): string {
  return join(cgroupV2Root(), 'ambit', lab);
}

export function podCgroup(lab: string, uid: string): string {
  return join(labCgroup(lab), 'kubepods', `pod${uid}`);
}

/** Pids in a cgroup and all its descendants. */
export function cgroupPids(dir: string): number[] {
  if (!existsSync(dir)) return [];
  const pids = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  for (const entry of readdirSync(dir, { withFileTypes: true }))
    if (entry.isDirectory()) pids.push(...cgroupPids(join(dir, entry.name)));
  return pids;
}

/** Removes an (empty) cgroup tree, children first; a cgroup still holding processes stays. */
export function removeCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true }))
    if (entry.isDirectory()) removeCgroupTree(join(dir, entry.name));
  try {
    rmdirSync(dir);
  } catch {}
}
