/**
 * Finds the netns of pods that are already running (istio-cni `podcgroupns_linux.go`): scan
 * `<proc>/<pid>`, attribute each process to a pod by its cgroup path, then accept the process's
 * netns only if one of the pod's IPs is an address inside it, since any process (a debugger,
 * a CNI plugin) may visit another pod's netns. The oldest process wins when a pod has several.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../errors.js';
import { unmapIPv4 } from '../net/ip.js';
import { logger } from '../runtime/log.js';
import { NetnsHandle } from '../sys/index.js';
import { podFromCgroupFile } from './cgroup.js';
import { agentError } from './errors.js';

const log = logger('ambit::agent::netns');

export interface WantedPod {
  uid: string;
  ips: readonly string[];
}

/** The addresses configured inside a netns (any interface). */
export type AddressLister = (netns: NetnsHandle) => Promise<string[]>;

export interface NetnsFinderOptions {
  procRoot?: string;
  addresses?: AddressLister;
}

/** `ip -j addr` under nsenter, so this process never changes namespace. */
export const addressesInNetns: AddressLister = (netns) =>
  new Promise((resolve, reject) => {
    execFile('nsenter', [`--net=${netns.procPath}`, '--', 'ip', '-j', 'addr', 'show'], (err, stdout) => {
      if (err)
        return reject(
          agentError(
            'AGENT_NETNS_ADDRESSES',
            `cannot list addresses in ${netns.description}: ${err.message}`,
          ),
        );
      try {
        const links = JSON.parse(stdout) as { addr_info?: { local?: string }[] }[];
        resolve(
          links.flatMap((l) => (l.addr_info ?? []).flatMap((a) => (a.local ? [unmapIPv4(a.local)] : []))),
        );
      } catch (e) {
        reject(agentError('AGENT_NETNS_ADDRESSES', `ip -j addr printed no JSON: ${errorMessage(e)}`));
      }
    });
  });

/** Clock ticks since boot when the process started: field 22 of stat, counted after the `)` of comm. */
export function startTime(statText: string): bigint {
  const fields = statText
    .slice(statText.lastIndexOf(')') + 1)
    .trim()
    .split(/\s+/);
  const v = fields[19];
  if (v === undefined || !/^\d+$/.test(v)) throw agentError('AGENT_PROC_STAT', 'malformed /proc/PID/stat');
  return BigInt(v);
}

interface Candidate {
  handle: NetnsHandle;
  start: bigint;
  pid: number;
}

export class NetnsFinder {
  readonly #procRoot: string;
  readonly #addresses: AddressLister;

  constructor(options: NetnsFinderOptions = {}) {
    this.#procRoot = options.procRoot ?? '/proc';
    this.#addresses = options.addresses ?? addressesInNetns;
  }

  /**
   * One handle per found pod (the caller owns them). Pods without IPs are skipped: their netns
   * cannot be confirmed yet. Processes that vanish mid-scan are ignored.
   */
  async find(pods: readonly WantedPod[]): Promise<Map<string, NetnsHandle>> {
    const wanted = new Map(pods.filter((p) => p.ips.length > 0).map((p) => [p.uid, p]));
    const found = new Map<string, Candidate>();
    if (wanted.size === 0) return new Map();
    const host = await stat(join(this.#procRoot, '1', 'ns', 'net'), { bigint: true }).catch(() => undefined);
    const claimed = new Set<string>();
    const entries = await readdir(this.#procRoot).catch((err) => {
      throw agentError('AGENT_PROC_SCAN', `cannot read ${this.#procRoot}: ${errorMessage(err)}`);
    });
    for (const name of entries) {
      if (!/^\d+$/.test(name)) continue;
      const dir = join(this.#procRoot, name);
      let uid: string | undefined;
      let key: string;
      let start: bigint;
      try {
        const ns = await stat(join(dir, 'ns', 'net'), { bigint: true });
        key = `${ns.dev}:${ns.ino}`;
        if (host && ns.dev === host.dev && ns.ino === host.ino) continue;
        if (claimed.has(key)) continue;
        uid = podFromCgroupFile(await readFile(join(dir, 'cgroup'), 'utf8'))?.uid;
        if (!uid || !wanted.has(uid)) continue;
        start = startTime(await readFile(join(dir, 'stat'), 'utf8'));
      } catch (err) {
        if (uid) log.debug('skipping process', { pid: name, error: errorMessage(err) });
        continue;
      }
      let handle: NetnsHandle;
      try {
        handle = NetnsHandle.open(join(dir, 'ns', 'net'));
      } catch {
        continue;
      }
      const pod = wanted.get(uid)!;
      if (!(await this.#owns(handle, pod))) {
        handle.close();
        continue;
      }
      claimed.add(key);
      const prev = found.get(uid);
      if (prev && prev.start <= start) {
        handle.close();
        continue;
      }
      prev?.handle.close();
      found.set(uid, { handle, start, pid: Number(name) });
    }
    for (const [uid, c] of found) log.info('found netns of running pod', { uid, pid: c.pid });
    return new Map([...found].map(([uid, c]) => [uid, c.handle]));
  }

  async #owns(handle: NetnsHandle, pod: WantedPod): Promise<boolean> {
    try {
      const addrs = await this.#addresses(handle);
      return pod.ips.some((ip) => addrs.includes(unmapIPv4(ip)));
    } catch (err) {
      log.warn('cannot confirm pod netns', { uid: pod.uid, error: errorMessage(err) });
      return false;
    }
  }
}
