/**
 * Plugin failures as typed errors. A plugin reports failure by exiting non-zero with the spec's
 * error JSON `{cniVersion, code, msg, details}` on stdout (libcni reads stdout; some plugins use stderr).
 */
import { AmbitError, codedError } from '../../errors.js';
import type { CniCommand } from './types.js';

/** The codes the lab's CNI runtime raises on purpose. */
export type CniRuntimeErrorCode =
  | 'CNI_INVALID_ARGS' // a CNI_ARGS value with ';' or '='
  | 'CNI_INVALID_CONFLIST' // not a CNI network configuration list
  | 'CNI_PLUGIN_NOT_FOUND' // a plugin of the chain is not in the plugin directories
  | 'CNI_EXEC_FAILED' // a plugin could not be run
  | 'CNI_PLUGIN_FAILED' // a plugin exited non-zero: CniPluginError
  | 'CNI_DEL_FAILED'; // DEL failed for some plugins of the chain: CniDelError

export const cniRuntimeError = codedError<CniRuntimeErrorCode>;

/** Well-known CNI error codes (SPEC.md "Error"); 100+ are plugin-specific. */
export const CNI_ERROR_CODES: Readonly<Record<number, string>> = {
  1: 'incompatible CNI version',
  2: 'unsupported field in network configuration',
  3: 'container unknown or does not exist',
  4: 'invalid necessary environment variables',
  5: 'I/O failure',
  6: 'failed to decode content',
  7: 'invalid network config',
  11: 'try again later',
  50: 'plugin not available',
  51: 'plugin not available, existing containers may have limited connectivity',
};

export interface CniErrorBody {
  cniVersion?: string;
  code: number;
  msg: string;
  details?: string;
}

/** A plugin of the chain failed; `cniCode` is the spec's numeric code when the plugin gave one. */
export class CniPluginError extends AmbitError {
  readonly plugin: string;
  readonly command: CniCommand;
  readonly cniCode: number | undefined;
  readonly msg: string;
  readonly details: string | undefined;
  readonly exitCode: number | null;

  constructor(init: {
    plugin: string;
    command: CniCommand;
    cniCode?: number;
    msg: string;
    details?: string;
    exitCode: number | null;
  }) {
    const known = init.cniCode !== undefined ? CNI_ERROR_CODES[init.cniCode] : undefined;
    const codeText =
      init.cniCode !== undefined ? ` (CNI code ${init.cniCode}${known ? `: ${known}` : ''})` : '';
    const detailText = init.details ? `; details: ${init.details}` : '';
    super(
      'CNI_PLUGIN_FAILED' satisfies CniRuntimeErrorCode,
      `CNI plugin '${init.plugin}' ${init.command} failed${codeText}: ${init.msg}${detailText}`,
    );
    this.name = 'CniPluginError';
    this.plugin = init.plugin;
    this.command = init.command;
    this.cniCode = init.cniCode;
    this.msg = init.msg;
    this.details = init.details;
    this.exitCode = init.exitCode;
  }
}

/** The spec's error object, if `text` is one; undefined for anything else. */
export function parseCniErrorBody(text: string): CniErrorBody | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!value || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v['code'] !== 'number' || typeof v['msg'] !== 'string') return undefined;
  return {
    cniVersion: typeof v['cniVersion'] === 'string' ? v['cniVersion'] : undefined,
    code: v['code'],
    msg: v['msg'],
    details: typeof v['details'] === 'string' && v['details'] !== '' ? v['details'] : undefined,
  };
}

/** Builds the error for a plugin that exited non-zero from what it printed. */
export function pluginFailure(
  plugin: string,
  command: CniCommand,
  exitCode: number | null,
  stdout: string,
  stderr: string,
): CniPluginError {
  const body = parseCniErrorBody(stdout.trim()) ?? parseCniErrorBody(stderr.trim());
  if (body)
    return new CniPluginError({
      plugin,
      command,
      cniCode: body.code,
      msg: body.msg,
      details: body.details,
      exitCode,
    });
  const printed = (stderr.trim() || stdout.trim()).split('\n').slice(-5).join(' | ');
  const status = exitCode === null ? 'was killed' : `exited with status ${exitCode}`;
  return new CniPluginError({ plugin, command, msg: printed ? `${status}: ${printed}` : status, exitCode });
}
