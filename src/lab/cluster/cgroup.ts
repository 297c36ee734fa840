/**
 * Pod and container cgroups laid out as a kubelet (cgroupfs driver) and containerd make them:
 * `…/kubepods/besteffort/pod<uid>/<64-hex container id>` (the lab's pods request no resources, so
 * their QoS class is BestEffort), under the lab's own subtree of the cgroup v2 hierarchy. The /proc
 * scans of ambit's agent and of Istio's istio-cni attribute a process to its pod from that path; Istio's
 * pattern requires the container level, so a process in a bare pod cgroup belongs to no pod for it.
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
  return join(labCgroup(lab), 'kubepods', 'besteffort', `pod${uid}`);
}

/** A container's cgroup under its pod's, named by the container id, as containerd names it. */
export function containerCgroup(pod: string, containerId: string): string {
  return join(pod, containerId);
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
