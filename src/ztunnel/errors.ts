/**
 * The codes the node proxy's process raises on purpose. Its parts have their own unions: proxy/, inpod/
 * and admin/; a bad configuration is runtime's ERR_CONFIG.
 */
import { type CodedError, codedError } from '../errors.js';

export type ZtunnelErrorCode = 'ERR_CAPABILITY'; // CAP_SYS_ADMIN or CAP_NET_ADMIN is missing: ztunnel refuses to start

export type ZtunnelError = CodedError<ZtunnelErrorCode>;
export const ztunnelError = codedError<ZtunnelErrorCode>;
