/**
 * Executes one plugin binary: found by `type` in the plugin dirs, config on stdin, CNI_* in the
 * environment, optionally inside another network namespace (the lab node the runtime stands for).
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { cniRuntimeError, pluginFailure } from './errors.js';
import type { CniCommand } from './types.js';

export const DEFAULT_CNI_PATH = '/usr/lib/cni';

/** The first executable file named `type` in `dirs`. */
export function findPlugin(type: string, dirs: readonly string[]): string {
  for (const dir of dirs) {
    const candidate = join(dir, type);
    try {
      if (statSync(candidate).isFile()) {
        accessSync(candidate, constants.X_OK);
        return candidate;
      }
    } catch {}
  }
  throw cniRuntimeError(
    'CNI_PLUGIN_NOT_FOUND',
    `CNI plugin '${type}' not found in ${dirs.join(':') || '(no plugin dirs)'}` +
      ' (the reference plugins come with the Debian package containernetworking-plugins: apt-get install containernetworking-plugins)',
  );
}

export interface PluginInvocation {
  plugin: string;
  binary: string;
  command: CniCommand;
  env: NodeJS.ProcessEnv;
  stdin: string;
  /** Network namespace (path) to run the plugin in; undefined = ours. */
  inNetns?: string;
  timeoutMs: number;
}

/** Runs a plugin; resolves to its stdout on exit 0, rejects with a CniPluginError otherwise. */
export function execPlugin(inv: PluginInvocation): Promise<string> {
  const [file, args] = inv.inNetns
    ? ['nsenter', [`--net=${inv.inNetns}`, '--', inv.binary]]
    : [inv.binary, [] as string[]];
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: inv.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, inv.timeoutMs);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    // A plugin may exit without reading stdin; the resulting EPIPE is not the failure to report.
    child.stdin.on('error', () => {});
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint =
        e.code === 'ENOENT' && inv.inNetns ? ' (nsenter comes with the Debian package util-linux)' : '';
      reject(
        cniRuntimeError(
          'CNI_EXEC_FAILED',
          `cannot run CNI plugin '${inv.plugin}' (${file}): ${e.message}${hint}`,
        ),
      );
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) resolve(stdout);
      else {
        const why = timedOut ? `timed out after ${inv.timeoutMs} ms` : stderr;
        reject(pluginFailure(inv.plugin, inv.command, code, stdout, why));
      }
    });
    child.stdin.end(inv.stdin);
  });
}
