/**
 * What `lab down` kills besides the pid files' processes, so a crash leaves nothing running: every
 * process whose network namespace is one of the lab's, every process in the lab's cgroups, and every
 * lab component whose command line names the lab (its netns may be gone already, its pid file lost).
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { labPrefix, NETNS_DIR, stateDir } from '../names.js';
import { cgroupPids, labCgroup } from './cgroup.js';
import { terminate } from './supervisor.js';

/** Inodes of the lab's named namespaces (`net:[INODE]` is what /proc/PID/ns/net links to). */
function labNetnsInodes(lab: string): Set<string> {
  const inodes = new Set<string>();
  let names: string[] = [];
  try {
    names = readdirSync(NETNS_DIR);
  } catch {}
  for (const name of names.filter((n) => n.startsWith(labPrefix(lab)))) {
    try {
      inodes.add(`net:[${statSync(`${NETNS_DIR}/${name}`).ino}]`);
    } catch {}
  }
  return inodes;
}

/** True for the lab's own components: `entry.js <role> <lab>`, or a command reading the lab's state dir. */
function isLabComponent(cmdline: string[], lab: string): boolean {
  const entry = cmdline.findIndex((a) => a.endsWith('/lab/cluster/entry.js'));
  if (entry >= 0 && cmdline[entry + 2] === lab) return true;
  const dir = `${stateDir(lab)}/`;
  return cmdline.some((a) => a.startsWith(dir));
}

/** Pids (other than ours) living in the lab's netns or cgroups, or running one of its components. */
export function labProcesses(lab: string): number[] {
  const inodes = labNetnsInodes(lab);
  const found = new Set<number>(cgroupPids(labCgroup(lab)));
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (inodes.has(readlinkSync(`/proc/${entry}/ns/net`))) found.add(Number(entry));
      else if (isLabComponent(readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0'), lab))
        found.add(Number(entry));
    } catch {}
  }
  found.delete(process.pid);
  return [...found];
}

export async function killLabProcesses(lab: string): Promise<number[]> {
  const pids = labProcesses(lab);
  await Promise.all(pids.map((pid) => terminate(pid, 2000)));
  return pids;
}
