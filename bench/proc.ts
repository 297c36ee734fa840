/**
 * The benchmark's own processes: its helpers started in a netns (the echo servers, the node floor's
 * relays) and stopped again; and what a proxy costs the machine, read from /proc: CPU time (utime and
 * stime) and resident memory of a process and everything it started, so a proxy that forks workers is
 * counted whole.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;

/**
 * Runs `node script args...` inside `netns` (`ip netns exec` execs, so the child's pid is node's) and
 * resolves once the script prints its first line (it is listening); `what` names it in errors.
 */
export function startInNetns(
  netns: string,
  script: string,
  args: string[],
  what: string,
): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, script, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`${what} not ready after ${READY_TIMEOUT_MS / 1000} s`));
    }, READY_TIMEOUT_MS);
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}`));
    };
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', onExit);
    child.stdout?.once('data', () => {
      clearTimeout(timer);
      child.off('exit', onExit);
      resolve(child);
    });
  });
}

/** SIGTERM, then SIGKILL after 10 s; resolves once the process is gone (its ports are free again). */
export function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

const TICKS_PER_SECOND = 100; // USER_HZ: what /proc/<pid>/stat counts in on Linux

/** Fields after the command name of /proc/<pid>/stat (state is [0], ppid [1], utime [11], stime [12]). */
function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text
      .slice(text.lastIndexOf(')') + 1)
      .trim()
      .split(/\s+/);
  } catch {
    return undefined;
  }
}

/** `pid` and its descendants that are alive now. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = Number(statFields(Number(entry))?.[1]);
    if (!Number.isInteger(ppid)) continue;
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const tree: number[] = [];
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop()!;
    tree.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return tree;
}

/** CPU seconds spent so far by the processes of `pids`' trees (all threads), in user space and in the kernel. */
export function cpuTimes(pids: readonly number[]): { user: number; system: number } {
  let user = 0;
  let system = 0;
  for (const pid of pids.flatMap(processTree)) {
    const f = statFields(pid);
    if (!f) continue;
    user += Number(f[11]);
    system += Number(f[12]);
  }
  return { user: user / TICKS_PER_SECOND, system: system / TICKS_PER_SECOND };
}

/**
 * Resident memory of `pid`'s tree in bytes: all of it (VmRSS), or only its anonymous part (RssAnon),
 * the process's own memory without the pages of its executable and libraries, which are shared with
 * every process running the same binary (Node's binary alone is ~34 MiB of a bare node's RSS).
 */
export function rssBytes(pid: number, field: 'VmRSS' | 'RssAnon' = 'VmRSS'): number {
  let kib = 0;
  const pattern = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm');
  for (const p of processTree(pid)) {
    try {
      kib += Number(pattern.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
    } catch {}
  }
  return kib * 1024;
}
