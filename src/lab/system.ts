/**
 * The host commands the lab drives (iproute2, nsenter) and the prerequisite checks that turn a
 * missing tool, plugin or privilege into an error naming the fix.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { findPlugin } from './cni-runtime/index.js';
import { labError } from './errors.js';

const TOOL_PACKAGES: Record<string, string> = { ip: 'iproute2', nsenter: 'util-linux' };

/** Runs a command to completion; throws LAB_COMMAND_FAILED with its stderr. */
export function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) {
    const pkg = TOOL_PACKAGES[cmd];
    throw labError(
      'LAB_MISSING_TOOL',
      `cannot run '${cmd}': ${r.error.message}${pkg ? ` (install the Debian package ${pkg})` : ''}`,
    );
  }
  if (r.status !== 0) {
    throw labError(
      'LAB_COMMAND_FAILED',
      `'${cmd} ${args.join(' ')}' failed (status ${r.status}): ${r.stderr.trim() || r.stdout.trim()}`,
    );
  }
  return r.stdout;
}

/** `ip -n NETNS ...` */
export function ipIn(netns: string, args: string[]): string {
  return sh('ip', ['-n', netns, ...args]);
}

/** Runs any command inside a named netns. */
export function execIn(netns: string, cmd: string, args: string[]): string {
  return sh('ip', ['netns', 'exec', netns, cmd, ...args]);
}

export function listNetns(): string[] {
  return sh('ip', ['netns', 'list'])
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter(Boolean);
}

/** True when `tool` is on PATH. */
export function toolExists(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export const LAB_PLUGINS = ['bridge', 'host-local', 'loopback'] as const;

/** Root, iproute2, nsenter and the reference CNI plugins (`plugins`): what `lab up` and `demo` need. */
export function checkPrerequisites(
  pluginDirs: readonly string[],
  plugins: readonly string[] = LAB_PLUGINS,
): void {
  if (process.getuid?.() !== 0) {
    throw labError(
      'LAB_NOT_ROOT',
      'the lab creates network namespaces, veths and bridges and needs root: run it with sudo (or as root)',
    );
  }
  for (const [tool, pkg] of Object.entries(TOOL_PACKAGES)) {
    if (!toolExists(tool)) {
      throw labError('LAB_MISSING_TOOL', `'${tool}' is not installed: apt-get install ${pkg}`);
    }
  }
  for (const plugin of plugins) findPlugin(plugin, pluginDirs);
}
