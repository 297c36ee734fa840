/** What the checks share, gathered once: the config dump and ztunnel's pid (or why they are missing). */
import type { ConfigDump } from '../admin/config-dump.js';
import { errorMessage } from '../errors.js';
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
