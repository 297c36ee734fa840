/**
 * Runs one `ambit <command>` of the CLI compiled beside these tests as a child process, optionally
 * inside a named netns via `ip netns exec` (which execs, so the child's pid is the component's), and
 * follows its log lines, so a test can wait for them, stall the process (SIGSTOP/SIGCONT) as a loaded
 * node would, and print its log when something fails.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { CONDITION_DEADLINE_MS, eventually } from './wait.js';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).href;
const ENTRY = `const { main } = await import(${JSON.stringify(MAIN)}); process.exitCode = await main(process.argv.slice(1));`;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface CliProcessOptions {
  /** Run inside this named netns (`ip netns exec`). */
  netns?: string;
  env?: Record<string, string>;
  /** Commands placed before node, e.g. setpriv to drop capabilities. */
  wrap?: string[];
}

export class CliProcess {
  readonly lines: string[] = [];
  stderr = '';
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  readonly #command: string;

  constructor(command: string, args: string[], options: CliProcessOptions = {}) {
    this.#command = command;
    const node = [process.execPath, '--input-type=module', '-e', ENTRY, command, ...args];
    const cmd = [
      ...(options.netns ? ['ip', 'netns', 'exec', options.netns] : []),
      ...(options.wrap ?? []),
      ...node,
    ];
    this.child = spawn(cmd[0]!, cmd.slice(1), {
      env: { ...process.env, RUST_LOG: 'info', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let partial = '';
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      this.lines.push(...parts);
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
    });
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  matching(re: RegExp): string[] {
    return this.lines.filter((l) => re.test(l));
  }

  /** Waits until `n` lines match; fails with the whole log if the process exits first. */
  async waitFor(re: RegExp, n = 1, timeoutMs = CONDITION_DEADLINE_MS): Promise<string[]> {
    await eventually(
      `${n} ${this.#command} log line(s) matching ${re}`,
      () => this.matching(re).length >= n || !this.running,
      timeoutMs,
    );
    if (this.matching(re).length < n) {
      throw new Error(
        `${this.#command} exited before logging ${re}; stderr: ${this.stderr}\n${this.lines.join('\n')}`,
      );
    }
    return this.matching(re);
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child.kill(sig);
  }

  /** SIGCONT (in case a test stopped it), SIGTERM, then SIGKILL if it has not exited after 15 s. */
  async stop(): Promise<Exit> {
    this.signal('SIGCONT');
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), 15_000);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }
}
