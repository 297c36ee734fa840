/** The codes the CNI installer and uninstaller raise on purpose. */
import { type CodedError, codedError } from '../../errors.js';

export type InstallErrorCode =
  | 'CNI_CONFIG_INVALID' // a .conf/.conflist that is not a valid network configuration
  | 'CNI_CONF_DIR_UNREADABLE'
  | 'CNI_NO_PRIMARY_CONFIG' // the primary CNI has written no configuration yet: the installer waits
  | 'CNI_UNINSTALL_TIMEOUT' // pods stayed on a node past the uninstall deadline
  | 'CNI_UNINSTALL_FAILED';

export type InstallError = CodedError<InstallErrorCode>;
export const installError = codedError<InstallErrorCode>;
