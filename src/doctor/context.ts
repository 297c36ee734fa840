/** What the checks share, gathered once: the config dump and ztunnel's pid (or why they are missing). */
import { statSync } from 'node:fs';
import { errorMessage } from '../errors.js';
import type { ConfigDump } from '../ztunnel/admin/config-dump.js';
import { fetchConfigDump, ztunnelPid } from './admin-client.js';
import type { DoctorTarget } from './types.js';

export interface DoctorContext {
  target: DoctorTarget;
  dump?: ConfigDump;
  dumpError?: string;
  ztunnelPid?: number;
}

export async function gatherContext(target: DoctorTarget): Promise<DoctorContext> {
  const ctx: DoctorContext = { target };
  try {
    ctx.dump = await fetchConfigDump(target.nodeNetns, target.admin);
  } catch (err) {
    ctx.dumpError = errorMessage(err);
  }
  try {
    ctx.ztunnelPid = await ztunnelPid(target.nodeNetns, target.admin);
  } catch {
    ctx.ztunnelPid = undefined;
  }
  return ctx;
}

/** The inode of the netns at `path` now (the pod's current one), or undefined if it cannot be read. */
export function netnsInodeAt(path: string): number | undefined {
  try {
    return Number(statSync(path, { bigint: true }).ino);
  } catch {
    return undefined;
  }
}

/**
 * When ztunnel's proxy for the pod runs in another netns than the pod's current one (a stale
 * sandbox's), the two inodes; else undefined.
 */
export function staleProxyNetns(ctx: DoctorContext): { proxy: number; pod: number } | undefined {
  const t = ctx.target;
  const entries = Object.entries(ctx.dump?.workloadState ?? {});
  const found = t.uid
    ? entries.find(([uid]) => uid === t.uid)
    : entries.find(([, e]) => e.info.namespace === t.namespace && e.info.name === t.name);
  const proxy = found?.[1].netnsInode;
  const pod = netnsInodeAt(t.podNetns);
  if (proxy === undefined || pod === undefined || proxy === pod) return undefined;
  return { proxy, pod };
}
