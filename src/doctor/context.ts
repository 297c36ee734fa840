/** What the checks share, gathered once: the config dump and ztunnel's pid (or why they are missing). */
import { readFileSync, statSync } from 'node:fs';
import { errorMessage } from '../errors.js';
import type { ConfigDump } from '../ztunnel/admin/config-dump.js';
import { fetchConfigDump, ztunnelPid } from './admin-client.js';
import type { DoctorTarget } from './types.js';

export interface DoctorContext {
  target: DoctorTarget;
  dump?: ConfigDump;
  dumpError?: string;
  ztunnelPid?: number;
  /**
   * Whether this ztunnel opens the SOCKS5 listener (127.0.0.1:15080) in each pod; Istio's does only
   * with UNSTABLE_ENABLE_SOCKS5=true. Undefined when neither source below could be read.
   */
  socks5?: { enabled: boolean; source: string };
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
  ctx.socks5 = socks5Setting(ctx.dump, ctx.ztunnelPid);
  return ctx;
}

/**
 * First ztunnel's own word, its config dump's `socks5Addr` (an address, or null when off); a dump
 * without that field, UNSTABLE_ENABLE_SOCKS5 in the ztunnel process's environment (off unless `true`,
 * as ztunnel reads it).
 */
export function socks5Setting(
  dump: ConfigDump | undefined,
  pid: number | undefined,
  procRoot = '/proc',
): DoctorContext['socks5'] {
  const config = dump?.config;
  if (config && 'socks5Addr' in config) {
    const addr = config['socks5Addr'];
    return {
      enabled: addr !== null && addr !== undefined && addr !== '',
      source: `ztunnel's /config_dump: socks5Addr ${JSON.stringify(addr ?? null)}`,
    };
  }
  if (pid === undefined) return undefined;
  let environ: string;
  try {
    environ = readFileSync(`${procRoot}/${pid}/environ`, 'latin1');
  } catch {
    return undefined;
  }
  const value = environ
    .split('\0')
    .find((kv) => kv.startsWith('UNSTABLE_ENABLE_SOCKS5='))
    ?.slice('UNSTABLE_ENABLE_SOCKS5='.length);
  return {
    enabled: value?.trim().toLowerCase() === 'true',
    source: `ztunnel pid ${pid}'s environment: UNSTABLE_ENABLE_SOCKS5 ${value === undefined ? 'unset' : `=${value}`}`,
  };
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
