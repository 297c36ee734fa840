/**
 * Failures the plugin reports to the runtime: the spec's numeric code plus a message, printed as
 * `{cniVersion, code, msg, details}` on stdout (libcni reads stdout).
 */
import { AmbitError, codedError } from '../../errors.js';

/** SPEC.md "Error" codes the plugin uses; 100+ would be plugin-specific. */
export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  InvalidEnv: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  NotAvailable: 50,
  Internal: 999,
} as const;
export type CniCode = (typeof CniCode)[keyof typeof CniCode];

const STABLE_CODES: Record<CniCode, string> = {
  1: 'CNI_INCOMPATIBLE_VERSION',
  2: 'CNI_UNSUPPORTED_FIELD',
  4: 'CNI_INVALID_ENV',
  5: 'CNI_IO_FAILURE',
  6: 'CNI_DECODE_FAILURE',
  7: 'CNI_INVALID_CONFIG',
  11: 'CNI_TRY_AGAIN_LATER',
  50: 'CNI_NOT_AVAILABLE',
  999: 'CNI_INTERNAL',
};

export class CniError extends AmbitError {
  readonly cniCode: CniCode;
  readonly details: string;

  constructor(cniCode: CniCode, msg: string, details = '') {
    super(STABLE_CODES[cniCode], msg);
    this.name = 'CniError';
    this.cniCode = cniCode;
    this.details = details;
  }

  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    return {
      cniVersion,
      code: this.cniCode,
      msg: this.message,
      ...(this.details ? { details: this.details } : {}),
    };
  }
}

/** The codes of the plugin's calls to the API server and the node agent, before they become a CniError. */
export type PluginErrorCode =
  | 'KUBE_REQUEST_FAILED' // a GET to the API server failed or answered no JSON
  | 'AGENT_UNREACHABLE' // the node agent's event socket cannot be reached
  | 'AGENT_REFUSED'; // the node agent answered the CNI event with an error status

export const pluginError = codedError<PluginErrorCode>;
