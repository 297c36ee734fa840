/**
 * Hand-over between two proxies sharing a pod's ports through SO_REUSEPORT: when the old proxy
 * closes its listener, connections still in its accept queue are reset unless the pod's netns has
 * `net.ipv4.tcp_migrate_req=1` (Linux ≥5.14), which moves them to the other listener instead.
 *
 * In an unprivileged container /proc/sys is mounted read-only, even with the capabilities ztunnel
 * has (SYS_ADMIN, NET_ADMIN). So when the plain write fails, it is done again from a private mount
 * namespace whose /proc/sys is remounted read-write: that changes no mount of the container, and the
 * sysctl written is the pod's (net.* sysctls belong to the netns of the process that writes them).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { errorMessage } from '../../errors.js';
import { logger } from '../../runtime/log.js';
import type { NetnsHandle } from '../../sys/index.js';
import type { WorkloadInfo, WorkloadUid } from '../../zds/messages.js';
import type { InPodProxy, InPodProxyFactory } from './proxy.js';

const log = logger('ztunnel::inpod::handover');
const run = promisify(execFile);

const SYSCTL = 'net.ipv4.tcp_migrate_req=1';

/** Run by node in a new mount namespace: /proc/sys read-write there, then the sysctl in the pod's netns. */
const PRIVATE_PROC_SYS_WRITE = `
import { execFileSync } from 'node:child_process';
const [enter, sysctl] = process.argv.slice(1);
execFileSync('mount', ['--bind', '/proc/sys', '/proc/sys']);
execFileSync('mount', ['-o', 'remount,bind,rw', '/proc/sys']);
execFileSync('nsenter', [enter, 'sysctl', '-qw', sysctl]);
`;

/** Sets tcp_migrate_req in `netns`; best effort: false (and a warning) when it cannot be set. */
export async function enableListenerMigration(netns: NetnsHandle): Promise<boolean> {
  const enter = `--net=${netns.procPath}`;
  let first: string;
  try {
    await run('nsenter', [enter, 'sysctl', '-qw', SYSCTL], { timeout: 5000 });
    return true;
  } catch (err) {
    first = failure(err);
  }
  try {
    // unshare's default propagation for --mount is private: the remount stays in that namespace.
    // Node runs the steps: the image has no shell.
    await run(
      'unshare',
      [
        '--mount',
        '--',
        process.execPath,
        '--input-type=module',
        '-e',
        PRIVATE_PROC_SYS_WRITE,
        '--',
        enter,
        SYSCTL,
      ],
      { timeout: 10_000 },
    );
    log.debug('tcp_migrate_req set through a private read-write /proc/sys', { netns: netns.description });
    return true;
  } catch (err) {
    log.warn('cannot enable tcp_migrate_req in the pod; a hand-over may reset queued connections', {
      netns: netns.description,
      error: first,
      fallback: failure(err),
    });
    return false;
  }
}

function failure(err: unknown): string {
  return (err as { stderr?: string }).stderr?.trim() || errorMessage(err);
}

/** Wraps a proxy factory so each pod's netns migrates queued connections between reuse-port listeners. */
export class MigratingProxyFactory implements InPodProxyFactory {
  constructor(readonly inner: InPodProxyFactory) {}

  async start(uid: WorkloadUid, info: WorkloadInfo, netns: NetnsHandle): Promise<InPodProxy> {
    await enableListenerMigration(netns);
    return this.inner.start(uid, info, netns);
  }
}
