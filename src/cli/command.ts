/** The shape every `ambit <command>` module exports, its exit codes and its start-up failure exit. */
import { errorCode, errorMessage } from '../errors.js';

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

/**
 * How a long-running command (ztunnel, agent, control-plane) ends when it cannot start: the reason on
 * stderr, then exit now. Returning the code is not enough: anything the failed start left behind (a
 * reconnecting client, a watch, a timer) would keep the process alive, serving nothing, while its
 * supervisor sees it running.
 */
export function exitOnStartupFailure(command: string, err: unknown): never {
  const code = errorCode(err);
  process.stderr.write(`ambit ${command}: ${errorMessage(err)}${code ? ` [${code}]` : ''}\n`);
  process.exit(EXIT_FAILURE);
}
