/**
 * Runs the `ambit` CLI from whichever dist dir these tests were compiled into, as a child process
 * (the real entry point, stdio and exit code included).
 */
import { spawn } from 'node:child_process';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).href;
const ENTRY = `const { main } = await import(${JSON.stringify(MAIN)}); process.exitCode = await main(process.argv.slice(1));`;

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: NodeJS.ProcessEnv;
  /** Run as this uid/gid (e.g. 65534, nobody) to see what a non-root user gets. */
  user?: number;
  /** Kill the command after this long (default 120 s); it then resolves with code null. */
  timeoutMs?: number;
}

export function ambit(args: string[], options: CliOptions = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', ENTRY, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
      timeout: options.timeoutMs ?? 120_000,
      ...(options.user !== undefined ? { uid: options.user, gid: options.user } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
