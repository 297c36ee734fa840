/**
 * The codes the pod proxy raises on purpose (the access log shows them after `connection failed:`), one
 * union so that matching on them is checked by the compiler. A failed start keeps its cause's code.
 */
import { AmbitError } from '../../errors.js';

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

export class ProxyError extends AmbitError {
  declare readonly code: ProxyErrorCode;

  constructor(code: ProxyErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
