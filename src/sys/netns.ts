/**
 * Network namespace handles. A handle is an open fd on an nsfs inode; its identity (device, inode)
 * is what ZDS and the state manager compare, since paths and pids can be reused.
 */
import { closeSync, fstatSync, openSync, statSync } from 'node:fs';
import { AmbitError, errorCode } from '../errors.js';
import { sysError } from './errors.js';
import { native } from './native.js';

export interface NetnsIdentity {
  readonly dev: bigint;
  readonly inode: bigint;
}

export function identityKey(id: NetnsIdentity): string {
  return `${id.dev}:${id.inode}`;
}

/**
 * The inode of the kernel's initial network namespace (`PROC_NET_INIT_INO`, fixed since Linux 3.8):
 * the host's root netns is recognisable even where `/proc/1` cannot be read.
 */
export const INIT_NETNS_INODE = 0xeffffff9n;

/** The identity of the netns at `path` (an nsfs path such as /proc/1/ns/net), or undefined if it cannot be read. */
export function netnsIdentityAt(path: string): NetnsIdentity | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return { dev: st.dev, inode: st.ino };
  } catch {
    return undefined;
  }
}

/**
 * A pod's netns as its users name it: a path (`/var/run/netns/x`, `/proc/PID/ns/net`), opened when
 * needed, or an open handle kept by its owner.
 */
export type NetnsRef = NetnsHandle | string;

export class NetnsHandle {
  #fd: number;
  readonly identity: NetnsIdentity;
  readonly description: string;

  private constructor(fd: number, description: string) {
    this.#fd = fd;
    this.description = description;
    const st = fstatSync(fd, { bigint: true });
    this.identity = { dev: st.dev, inode: st.ino };
  }

  /** Opens `/var/run/netns/NAME`, `/proc/PID/ns/net` or any nsfs path. */
  static open(path: string): NetnsHandle {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      const code = errorCode(err) ?? 'EIO';
      // The errno of the failed open, passed on: a plain AmbitError.
      throw new AmbitError(code, `cannot open network namespace ${path}: ${code}`, { cause: err });
    }
    return NetnsHandle.fromFd(fd, path);
  }

  static forPid(pid: number): NetnsHandle {
    if (!Number.isInteger(pid) || pid <= 0) throw sysError('EINVAL', `invalid pid ${pid}`);
    return NetnsHandle.open(`/proc/${pid}/ns/net`);
  }

  /** The namespace this process runs in. */
  static current(): NetnsHandle {
    return NetnsHandle.open('/proc/thread-self/ns/net');
  }

  /**
   * Takes ownership of an fd (for example one received over ZDS). Checks it really is a network
   * namespace by entering it and coming back, which is also the capability check ztunnel makes.
   */
  static fromFd(fd: number, description = `fd ${fd}`): NetnsHandle {
    try {
      native().netnsCheck(fd);
    } catch (err) {
      const code = errorCode(err) ?? 'EINVAL';
      try {
        closeSync(fd);
      } catch {}
      const hint =
        code === 'EPERM' ? ' (needs CAP_SYS_ADMIN)' : code === 'EINVAL' ? ' (not a network namespace)' : '';
      // The errno of the failed check, passed on: a plain AmbitError.
      throw new AmbitError(code, `cannot enter network namespace ${description}: ${code}${hint}`, {
        cause: err,
      });
    }
    return new NetnsHandle(fd, description);
  }

  get fd(): number {
    if (this.#fd < 0) throw sysError('EBADF', `network namespace handle ${this.description} is closed`);
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** `/proc/self/fd/N`: a path tools like `nsenter --net=` accept for this handle. */
  get procPath(): string {
    return `/proc/${process.pid}/fd/${this.fd}`;
  }

  sameAs(other: NetnsHandle | NetnsIdentity): boolean {
    const id = other instanceof NetnsHandle ? other.identity : other;
    return id.dev === this.identity.dev && id.inode === this.identity.inode;
  }

  close(): void {
    if (this.#fd >= 0) {
      closeSync(this.#fd);
      this.#fd = -1;
    }
  }
}
