/**
 * The codes the pod proxy raises on purpose (the access log shows them after `connection failed:`), one
 * union so that matching on them is checked by the compiler. A failed start keeps its cause's code.
 */
import { type CodedError, codedError } from '../../errors.js';

export type ProxyErrorCode =
  | 'ABORT_ERR' // the connection is no longer wanted (the HBONE stream it was for is gone)
  | 'EMFILE' // open files near the process limit: no new upstream connection
  | 'ETIMEDOUT' // the upstream did not answer within the connect timeout
  | 'ERR_PROXY_STOPPED' // the pod's proxy stopped while the upstream connection was being made
  | 'ERR_PROXY_START' // a listener could not be bound, when the cause has no code of its own
  | 'ERR_SOCKS5'; // a SOCKS5 handshake the proxy cannot serve

export type ProxyError = CodedError<ProxyErrorCode>;
export const proxyError = codedError<ProxyErrorCode>;
