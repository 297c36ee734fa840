/**
 * Runs the netfilter and routing tools inside a pod's (or the node's) network namespace by
 * spawning them under `nsenter --net=`, so the caller's own namespace never changes.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { NetnsRef } from '../sys/netns.js';
import { redirectError } from './errors.js';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Where commands run: a netns path, or null for the caller's own netns. */
export interface Place {
  netns: string | null;
  /** PATH used to find the tools (defaults to this process's PATH). */
  path: string;
}

export function netnsPath(ref: NetnsRef): string {
  const path = typeof ref === 'string' ? ref : `/proc/${process.pid}/fd/${ref.fd}`;
  try {
    statSync(path);
  } catch {
    throw redirectError(
      'ERR_REDIRECT_NETNS_NOT_FOUND',
      `network namespace ${path} does not exist: pass the path of a live pod netns (e.g. /var/run/netns/NAME or /proc/PID/ns/net)`,
    );
  }
  return path;
}

export function findTool(place: Place, tool: string): string | undefined {
  for (const dir of place.path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, tool);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

/** Fails before anything is changed when a tool is missing, naming the package that provides it. */
export function requireTools(place: Place, tools: readonly string[]): void {
  const needed = place.netns ? ['nsenter', ...tools] : tools;
  const missing = needed.filter((t) => findTool(place, t) === undefined);
  if (missing.length) {
    throw redirectError(
      'ERR_REDIRECT_TOOL_MISSING',
      `required command(s) not found on PATH: ${missing.join(', ')}; install them (Debian: apt-get install iptables iproute2 util-linux nftables ipset) or fix PATH (${place.path})`,
    );
  }
}

export function exec(
  place: Place,
  cmd: string,
  args: readonly string[],
  input?: string,
): Promise<ExecResult> {
  const [file, argv] = place.netns
    ? ['nsenter', [`--net=${place.netns}`, '--', cmd, ...args]]
    : [cmd, [...args]];
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      argv,
      { encoding: 'utf8', env: { ...process.env, PATH: place.path }, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && (err.code === 'ENOENT' || err.code === 'EACCES')) {
          reject(
            redirectError('ERR_REDIRECT_TOOL_MISSING', `cannot run ${file}: ${err.message}`, { cause: err }),
          );
          return;
        }
        if (err && typeof err.code === 'string') {
          reject(
            redirectError('ERR_REDIRECT_COMMAND_FAILED', `${cmd} ${args.join(' ')}: ${err.message}`, {
              cause: err,
            }),
          );
          return;
        }
        resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr });
      },
    );
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });
}

/** Like exec, but a non-zero exit is an error carrying the command's stderr. */
export async function execOk(
  place: Place,
  cmd: string,
  args: readonly string[],
  input?: string,
): Promise<string> {
  const r = await exec(place, cmd, args, input);
  if (r.code !== 0) {
    const where = place.netns ? ` in netns ${place.netns}` : '';
    throw redirectError(
      'ERR_REDIRECT_COMMAND_FAILED',
      `${cmd} ${args.join(' ')}${where} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`,
    );
  }
  return r.stdout;
}
