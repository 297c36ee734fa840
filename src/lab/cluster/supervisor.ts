/**
 * Background processes that outlive the command that started them: spawned detached with their
 * output appended to a log file, and remembered by a pid file holding the pid and its start time,
 * so a recycled pid is never mistaken for ours (and never signalled).
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorCode } from '../../errors.js';

export interface ProcessFiles {
  pidFile: string;
  logFile: string;
  /** Working directory of the process (default: ours). */
  cwd?: string;
}

/** Field 22 of /proc/PID/stat (start time in clock ticks) and the state letter; undefined if gone. */
function procStat(pid: number): { start: string; state: string } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const fields = text
    .slice(text.lastIndexOf(')') + 1)
    .trim()
    .split(/\s+/);
  return { state: fields[0] ?? '?', start: fields[19] ?? '' };
}

/** True while the process exists and is not a zombie. */
export function processAlive(pid: number): boolean {
  const stat = procStat(pid);
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';
}

/** Starts `argv` detached (own session), stdout and stderr appended to the log file; returns the pid. */
export function startDetached(files: ProcessFiles, argv: readonly string[], env: NodeJS.ProcessEnv): number {
  mkdirSync(dirname(files.logFile), { recursive: true });
  mkdirSync(dirname(files.pidFile), { recursive: true });
  const log = openSync(files.logFile, 'a');
  try {
    const child = spawn(argv[0]!, argv.slice(1), {
      detached: true,
      stdio: ['ignore', log, log],
      env,
      ...(files.cwd === undefined ? {} : { cwd: files.cwd }),
    });
    // A failed exec still yields a pid-less child; the health wait reports it with the log tail.
    child.on('error', () => {});
    child.unref();
    const pid = child.pid;
    if (pid === undefined) return 0;
    writeFileSync(files.pidFile, `${pid} ${procStat(pid)?.start ?? ''}\n`);
    return pid;
  } finally {
    closeSync(log);
  }
}

/** The pid in the file when that very process still runs, else undefined. */
export function runningPid(pidFile: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(pidFile, 'utf8');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  const [pidText, start] = text.trim().split(' ');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const stat = procStat(pid);
  if (!stat || stat.state === 'Z' || (start && stat.start !== start)) return undefined;
  return pid;
}

/** SIGTERM, then SIGKILL after `graceMs`; waits until the process is gone. */
export async function terminate(pid: number, graceMs = 5000): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {}
  };
  signal('SIGTERM');
  let killed = false;
  for (let waited = 0; processAlive(pid); waited += 50) {
    if (waited >= graceMs && !killed) {
      signal('SIGKILL');
      killed = true;
    }
    if (waited > graceMs + 5000) break;
    await sleep(50);
  }
}

/** Stops the process of a pid file (if it runs) and removes the file. */
export async function stopByPidFile(pidFile: string, graceMs?: number): Promise<boolean> {
  const pid = runningPid(pidFile);
  if (pid !== undefined) await terminate(pid, graceMs);
  rmSync(pidFile, { force: true });
  return pid !== undefined;
}

/** The last `lines` lines of a log file ('' when there is none). */
export function logTail(logFile: string, lines = 20): string {
  try {
    return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
