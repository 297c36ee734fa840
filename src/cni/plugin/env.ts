/** The CNI_* environment of one invocation, checked per command as libcni's skel does. */
import { errorMessage } from '../../errors.js';
import { type K8sArgs, parseCniArgs } from '../cni-args.js';
import { CniCode, CniError } from './errors.js';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';
const COMMANDS = new Set<string>(['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION']);

export interface CniEnv {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifname: string;
  path: string;
  args: K8sArgs;
}

/** Variables each command cannot do without; DEL tolerates a missing CNI_NETNS (the netns may be gone). */
const REQUIRED: Record<CniCommand, readonly string[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  GC: ['CNI_PATH'],
  STATUS: ['CNI_PATH'],
  VERSION: [],
};

export function readCniEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env['CNI_COMMAND'];
  if (!command) throw new CniError(CniCode.InvalidEnv, 'required env variable CNI_COMMAND is missing');
  if (!COMMANDS.has(command)) {
    throw new CniError(
      CniCode.InvalidEnv,
      `unknown CNI_COMMAND '${command}' (want one of ${[...COMMANDS].join(', ')})`,
    );
  }
  const cmd = command as CniCommand;
  const missing = REQUIRED[cmd].filter((name) => !env[name]);
  if (missing.length > 0) {
    throw new CniError(
      CniCode.InvalidEnv,
      `required env variables [${missing.join(' ')}] missing for ${cmd}`,
    );
  }
  let args: K8sArgs;
  try {
    args = parseCniArgs(cmd === 'VERSION' ? undefined : env['CNI_ARGS']);
  } catch (err) {
    throw new CniError(CniCode.InvalidEnv, `invalid env variable CNI_ARGS: ${errorMessage(err)}`);
  }
  return {
    command: cmd,
    containerId: env['CNI_CONTAINERID'] ?? '',
    netns: env['CNI_NETNS'] ?? '',
    ifname: env['CNI_IFNAME'] ?? '',
    path: env['CNI_PATH'] ?? '',
    args,
  };
}
