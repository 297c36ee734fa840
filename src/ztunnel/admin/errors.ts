/** The codes ztunnel's admin server raises on purpose. */
import { type CodedError, codedError } from '../../errors.js';

export type AdminErrorCode =
  | 'ERR_ADMIN_BAD_LEVEL' // a /logging level that is not <level> or <target>=<level>
  | 'ERR_ADMIN_NOT_LOCAL'; // the admin address is not a loopback address

export type AdminError = CodedError<AdminErrorCode>;
export const adminError = codedError<AdminErrorCode>;
