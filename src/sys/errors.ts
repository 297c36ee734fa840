/**
 * The codes the system layer raises on purpose. Errno names stand where the kernel's own meaning fits;
 * a failed syscall's errno is passed on as it came, outside this union.
 */
import { type CodedError, codedError } from '../errors.js';

export type SysErrorCode =
  | 'ENATIVE' // the native addon is not built
  | 'EINVAL' // not a valid pid
  | 'EBADF' // a netns handle or socket whose file descriptor is closed
  | 'ENOTCONN' // the original destination of a socket that is not connected
  | 'EPOLL' // polling a seqpacket socket failed
  | 'ERR_SOCKET_CLOSED' // a seqpacket send after, or cut short by, the close
  | 'ERR_UNKNOWN_OPTION' // a socket option the call does not know
  | 'ERR_INVALID_PORT'
  | 'ERR_INVALID_IP' // not an IP address, or source and destination of different families
  | 'ERR_INVALID_MARK';

export type SysError = CodedError<SysErrorCode>;
export const sysError = codedError<SysErrorCode>;
