/**
 * Start-up checks (upstream `verify_syscalls`): the proxy must be able to enter network namespaces
 * (CAP_SYS_ADMIN) and mark its sockets (CAP_NET_ADMIN); without them every pod would fail later,
 * so refuse to start and say which capability is missing.
 */
import { closeSync } from 'node:fs';
import { errorCode } from '../errors.js';
import { NetnsHandle } from '../sys/index.js';
import { tcpSocketFd } from '../sys/socket.js';
import { ztunnelError } from './errors.js';

export function verifySyscalls(mark: number): void {
  try {
    // Opening our own netns enters it and comes back: a no-op switch.
    NetnsHandle.current().close();
  } catch (err) {
    const code = errorCode(err) ?? 'EIO';
    throw ztunnelError(
      'ERR_CAPABILITY',
      `failed to set netns (${code}): make sure ztunnel has CAP_SYS_ADMIN (it enters pod network namespaces)`,
      { cause: err },
    );
  }
  let fd: number;
  try {
    fd = tcpSocketFd(null, { family: 4, mark });
  } catch (err) {
    const code = errorCode(err) ?? 'EIO';
    throw ztunnelError(
      'ERR_CAPABILITY',
      `failed to set socket mark ${mark} (${code}): make sure ztunnel has CAP_NET_ADMIN (or CAP_NET_RAW)`,
      { cause: err },
    );
  }
  closeSync(fd);
}
