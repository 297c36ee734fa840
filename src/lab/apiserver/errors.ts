/**
 * The codes the lab API server raises on purpose. Refusals the API server answers to clients are
 * StatusErrors, whose code (APISERVER_<REASON>) follows the Kubernetes status reason.
 */
import { type CodedError, codedError } from '../../errors.js';

export type ApiServerErrorCode =
  | 'APISERVER_BAD_LISTEN' // --listen is not host:port
  | 'APISERVER_NO_SUCH_USER' // a static user the lab did not configure
  | 'APISERVER_STATE_CORRUPT' // the state file is not JSON or not the API server's
  | 'SELECTOR_INVALID' // a label or field selector that does not parse
  | 'PATCH_MALFORMED' // a JSON, merge or strategic merge patch that is not well formed
  | 'PATCH_FAILED'; // a well-formed JSON patch whose test failed or path does not exist

export type ApiServerError = CodedError<ApiServerErrorCode>;
export const apiServerError = codedError<ApiServerErrorCode>;
