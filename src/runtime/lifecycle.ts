/**
 * The one life of ambit's long-running processes (the node agent, ztunnel, the control plane), as
 * Istio's components live it: start; if start-up fails, the reason on stderr and exit 1 at once
 * (anything the failed start left behind, a reconnecting client or a watch, would otherwise keep a
 * process alive that serves nothing while its supervisor sees it running); then serve until one
 * shutdown request (SIGTERM, SIGINT, or the process's own, like ztunnel's POST /quitquitquit);
 * then drain and stop. A second SIGINT while draining exits at once (128 + SIGINT).
 */
import { errorCode, errorMessage } from '../errors.js';
import { type Logger, logger } from './log.js';

/** Exit code when a second SIGINT cuts the drain short (128 + SIGINT). */
export const EXIT_INTERRUPTED = 130;
/** Exit code of a start-up failure. */
export const EXIT_START_FAILED = 1;

/** A started process. */
export interface Running {
  /** Drains and stops; resolves when done (exit code 0). */
  shutdown(reason: string): Promise<unknown>;
}

/** Asks the running process to shut down (first request wins). */
export type RequestShutdown = (reason: string) => void;

/** The reason on stderr, then exit now (see the module comment). */
export function exitOnStartupFailure(command: string, err: unknown): never {
  const code = errorCode(err);
  process.stderr.write(`ambit ${command}: ${errorMessage(err)}${code ? ` [${code}]` : ''}\n`);
  process.exit(EXIT_START_FAILED);
}

/**
 * Starts `command` and serves until a shutdown request; resolves to the exit code of its shutdown.
 * `start` gets the function with which the process may ask for its own shutdown.
 */
export async function runUntilShutdown(
  command: string,
  start: (requestShutdown: RequestShutdown) => Promise<Running>,
  options: { log?: Logger } = {},
): Promise<number> {
  const log = options.log ?? logger(`ambit::${command}`);
  let request: RequestShutdown = () => {};
  const requested = new Promise<string>((resolve) => {
    request = resolve;
  });
  let running: Running;
  try {
    running = await start((reason) => request(reason));
  } catch (err) {
    return exitOnStartupFailure(command, err);
  }
  let draining = false;
  const onSigint = () => {
    if (!draining) return request('SIGINT');
    log.warn('received second signal, exiting immediately');
    process.exit(EXIT_INTERRUPTED);
  };
  const onSigterm = () => request('SIGTERM');
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  try {
    const reason = await requested;
    draining = true;
    await running.shutdown(reason);
    return 0;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
  }
}
