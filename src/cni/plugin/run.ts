/** One plugin invocation: environment + stdin in, exactly one stdout document and an exit code out. */
import { errorMessage } from '../../errors.js';
import { cmdAdd, cmdGc, cmdStatus, type PluginContext, versionInfo } from './commands.js';
import { decodeConfig, parseConfig } from './config.js';
import { readCniEnv } from './env.js';
import { CniCode, CniError } from './errors.js';
import type { PluginLog } from './log.js';

export interface PluginOutcome {
  stdout: string;
  exitCode: number;
}

export async function runPlugin(
  processEnv: NodeJS.ProcessEnv,
  stdin: string,
  log: PluginLog,
  overrides: Pick<PluginContext, 'podSource' | 'retry'> = {},
): Promise<PluginOutcome> {
  let cniVersion = '1.1.0';
  try {
    const env = readCniEnv(processEnv);
    if (env.command === 'VERSION') return { stdout: versionInfo(), exitCode: 0 };
    const raw = decodeConfig(stdin);
    if (typeof raw['cniVersion'] === 'string') cniVersion = raw['cniVersion'];
    const config = parseConfig(raw);
    log.setLevel(config.pluginLogLevel);
    const ctx: PluginContext = { env, config, log, ...overrides };
    log.debug('invoked', { command: env.command, containerID: env.containerId, netns: env.netns });
    switch (env.command) {
      case 'ADD':
        return { stdout: await cmdAdd(ctx), exitCode: 0 };
      case 'DEL':
      case 'CHECK':
        return { stdout: '', exitCode: 0 };
      case 'STATUS':
        return { stdout: await cmdStatus(ctx), exitCode: 0 };
      case 'GC':
        return { stdout: cmdGc(ctx), exitCode: 0 };
    }
  } catch (err) {
    // Anything unexpected still leaves as the spec's error JSON, never as a stack on stdout.
    const cniErr = err instanceof CniError ? err : new CniError(CniCode.Internal, errorMessage(err));
    log.error(cniErr.message, { code: cniErr.cniCode });
    return { stdout: JSON.stringify(cniErr.toJSON(cniVersion)), exitCode: 1 };
  }
}
