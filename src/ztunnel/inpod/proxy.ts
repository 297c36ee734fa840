/**
 * The per-pod proxy as the in-pod state manager sees it. The state manager decides when a pod's
 * proxy starts and stops; what a proxy is lives behind this interface. ztunnel's real one (issue
 * "ztunnel in-pod proxy") opens its listeners inside the pod netns: 15001 outbound, 15006 inbound
 * plaintext, 15008 inbound HBONE, 15080 SOCKS5 on 127.0.0.1, every socket marked with PACKET_MARK.
 */
import type { NetnsHandle } from '../../sys/index.js';
import type { WorkloadInfo, WorkloadUid } from '../../zds/messages.js';

/**
 * 'immediate': pod deleted or replaced; stop listening and cut in-flight connections at once.
 * 'drain': the proxy process is shutting down; stop listening, let connections finish for the
 * termination deadline, then cut them.
 */
export type StopMode = 'drain' | 'immediate';

export interface InPodProxy {
  /** Resolves once the listeners are closed (and, for 'drain', the connections finished). */
  stop(mode: StopMode): Promise<void>;
}

export interface InPodProxyFactory {
  /**
   * Starts the proxy of pod `uid` inside `netns`, resolving once its listeners are bound. Rejects
   * when they cannot be (port taken, setns refused): the pod is then retried later. `netns` stays
   * owned by the caller, which closes it after `stop()`; sockets made inside it keep it alive.
   */
  start(uid: WorkloadUid, info: WorkloadInfo, netns: NetnsHandle): Promise<InPodProxy>;
}
