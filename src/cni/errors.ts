/**
 * The codes the node's CNI inputs (CNI_ARGS, the CNI event, kubeconfigs, enablement selectors) raise on
 * purpose. The plugin's spec errors (CniError) and the installer have their own.
 */
import { type CodedError, codedError } from '../errors.js';

export type CniErrorCode =
  | 'CNI_ARGS_INVALID'
  | 'CNI_RESULT_INVALID' // the previous plugin's result has no valid ips
  | 'EVENT_INVALID' // a CNI event the agent cannot read
  | 'KUBECONFIG_INVALID'
  | 'KUBECONFIG_MISSING' // no kubeconfig given and no in-cluster service account
  | 'SELECTOR_INVALID'; // an enablement selector that does not parse

export type CniInputError = CodedError<CniErrorCode>;
export const cniInputError = codedError<CniErrorCode>;
