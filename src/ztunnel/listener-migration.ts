/**
 * Hand-over between two proxies sharing a pod's ports through SO_REUSEPORT: when the old proxy
 * closes its listener, connections still in its accept queue are reset unless the pod's netns has
 * `net.ipv4.tcp_migrate_req=1` (Linux ≥5.14), which moves them to the other listener instead.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { errorMessage } from '../errors.js';
import { logger } from '../runtime/log.js';
import type { NetnsHandle } from '../sys/index.js';
import type { WorkloadInfo, WorkloadUid } from '../zds/messages.js';
import type { InPodProxy, InPodProxyFactory } from './inpod/index.js';

const log = logger('ztunnel::inpod::handover');
const run = promisify(execFile);

/** Sets tcp_migrate_req in `netns`; best effort: false (and a warning) when it cannot be set. */
export async function enableListenerMigration(netns: NetnsHandle): Promise<boolean> {
  try {
    await run('nsenter', [`--net=${netns.procPath}`, 'sysctl', '-qw', 'net.ipv4.tcp_migrate_req=1'], {
      timeout: 5000,
    });
    return true;
  } catch (err) {
    const detail = (err as { stderr?: string }).stderr?.trim() || errorMessage(err);
    log.warn('cannot enable tcp_migrate_req in the pod; a hand-over may reset queued connections', {
      netns: netns.description,
      error: detail,
    });
    return false;
  }
}

/** Wraps a proxy factory so each pod's netns migrates queued connections between reuse-port listeners. */
export class MigratingProxyFactory implements InPodProxyFactory {
  constructor(readonly inner: InPodProxyFactory) {}

  async start(uid: WorkloadUid, info: WorkloadInfo, netns: NetnsHandle): Promise<InPodProxy> {
    await enableListenerMigration(netns);
    return this.inner.start(uid, info, netns);
  }
}
