/** The shape every `ambit <command>` module exports, its exit codes and its start-up failure exit. */

export interface Command {
  /** Runs with the arguments after the command name; resolves to the process exit code. */
  run(argv: string[]): Promise<number>;
}

/** Exit codes shared by the commands (sysexits-like). */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export class UsageError extends Error {
  readonly code = 'ERR_USAGE';
}

/** How a long-running command ends when it cannot start: see src/runtime/lifecycle.ts. */
export { exitOnStartupFailure } from '../runtime/lifecycle.js';
