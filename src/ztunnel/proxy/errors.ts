/**
 * The codes the pod proxy raises on purpose (the access log shows them after `connection failed:`), one
 * union so that matching on them is checked by the compiler. A failed start keeps its cause's code.
 */
import { type CodedError, codedError } from '../../errors.js';

export type ProxyErrorCode =
  /** The connection is no longer wanted (the HBONE stream it was for is gone). */
  | 'ABORT_ERR'
  /** Open files are near the process limit: no new upstream connection. */
  | 'EMFILE'
  /** The upstream did not answer within the connect timeout. */
  | 'ETIMEDOUT'
  /** The pod's proxy stopped while the upstream connection was being made. */
  | 'ERR_PROXY_STOPPED'
  | 'ERR_PROXY_START'
  | 'ERR_SOCKS5';

export type ProxyError = CodedError<ProxyErrorCode>;
export const proxyError = codedError<ProxyErrorCode>;
