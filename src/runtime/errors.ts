/**
 * The codes the process infrastructure shared by the long-running commands raises on purpose. ERR_CONFIG
 * is the one configuration error code of the agent and ztunnel: their commands print it and exit 2.
 */
import { type CodedError, codedError } from '../errors.js';

export type RuntimeErrorCode =
  | 'ERR_CONFIG' // a bad flag, variable or setting; the message names its source
  | 'ERR_LISTEN'; // an HTTP server could not listen and the cause has no errno code of its own

export type RuntimeError = CodedError<RuntimeErrorCode>;
export const runtimeError = codedError<RuntimeErrorCode>;
