/**
 * Owns the lifecycle of every pod proxy, driven by ZDS requests (upstream src/inpod/statemanager.rs
 * semantics): Add is idempotent per netns identity, a new netns for a uid replaces the proxy, a
 * failed start is kept pending for retry, SnapshotSent stops whatever the agent did not name since
 * the connection began. Callers serialise calls; nothing here runs two requests at once.
 */
import { EventEmitter } from 'node:events';
import { errorMessage } from '../../errors.js';
import { logger } from '../../runtime/log.js';
import { INIT_NETNS_INODE, NetnsHandle, netnsIdentityAt } from '../../sys/index.js';
import type { WorkloadInfo, WorkloadUid } from '../../zds/messages.js';
import { closeFds, type RequestPacket } from '../../zds/packet.js';
import { inPodError } from './errors.js';
import type { InPodProxy, InPodProxyFactory, StopMode } from './proxy.js';

const log = logger('ztunnel::inpod::statemanager');

/** The proxy could not start; the request is NACKed, the connection kept, the pod retried. */
export const ZDS_PROXY_START = 'ZDS_PROXY_START';
/**
 * The netns is not one a pod proxy may live in (ztunnel's own, the host's root, or one another uid is
 * proxied in): the request is NACKed, the connection kept, nothing is retried or changed.
 */
export const ZDS_NETNS_REFUSED = 'ZDS_NETNS_REFUSED';
/** The agent broke the protocol (Add without info, Keep after the snapshot, second SnapshotSent). */
export const ZDS_PROTOCOL = 'ZDS_PROTOCOL';

interface RunningWorkload {
  info: WorkloadInfo;
  netns: NetnsHandle;
  proxy: InPodProxy;
}

interface PendingWorkload {
  info: WorkloadInfo;
  /** Undefined when the received fd was not a usable netns: retries fail until the agent re-adds. */
  netns: NetnsHandle | undefined;
  error: string;
}

/** Per-pod state for /config_dump's `workloadState`. */
export interface WorkloadStateEntry {
  state: 'Up' | 'Pending';
  info: WorkloadInfo;
  /** The netns inode (absent when a pending pod's fd was unusable): doctor compares it with the pod's. */
  netnsInode?: number;
}

export interface StateManagerEvents {
  readiness: [ready: boolean];
}

const podName = (uid: string) => `WorkloadUid(${JSON.stringify(uid)})`;

export class InPodStateManager extends EventEmitter<StateManagerEvents> {
  #factory: InPodProxyFactory;
  #running = new Map<WorkloadUid, RunningWorkload>();
  #pending = new Map<WorkloadUid, PendingWorkload>();
  #snapshotReceived = false;
  /** Uids named by Add or Keep since the current connection began. */
  #snapshotNames = new Set<WorkloadUid>();
  #lastReady = false;
  proxiesStarted = 0;
  proxiesStopped = 0;

  constructor(factory: InPodProxyFactory) {
    super();
    this.#factory = factory;
  }

  /** Snapshot processed and no pod waiting for its proxy. */
  ready(): boolean {
    return this.#snapshotReceived && this.#pending.size === 0;
  }

  get activeCount(): number {
    return this.#running.size;
  }

  pendingUids(): WorkloadUid[] {
    return [...this.#pending.keys()].sort();
  }

  workloadState(): Record<string, WorkloadStateEntry> {
    const out: Record<string, WorkloadStateEntry> = {};
    for (const [uid, w] of this.#running)
      out[uid] = { state: 'Up', info: { ...w.info }, netnsInode: Number(w.netns.identity.inode) };
    for (const [uid, p] of this.#pending) {
      out[uid] = { state: 'Pending', info: { ...p.info } };
      if (p.netns) out[uid].netnsInode = Number(p.netns.identity.inode);
    }
    return out;
  }

  /**
   * A ZDS connection began (or ended): the agent will resend its snapshot, so forget what the last
   * one named and what was pending (the agent re-sends those). Running proxies are untouched.
   */
  resetConnection(): void {
    this.#snapshotNames.clear();
    for (const p of this.#pending.values()) p.netns?.close();
    this.#pending.clear();
    this.#snapshotReceived = false;
    this.#notifyReadiness();
  }

  /** Handles one request; throws AmbitError with code ZDS_PROXY_START or ZDS_PROTOCOL. */
  async process(packet: RequestPacket): Promise<void> {
    try {
      if ('netnsFd' in packet)
        await this.#add(packet.request.uid, packet.request.workloadInfo, packet.netnsFd);
      else {
        const req = packet.request;
        if (req.kind === 'keep') this.#keep(req.uid);
        else if (req.kind === 'del') await this.#del(req.uid);
        else await this.#snapshotSent();
      }
    } finally {
      this.#notifyReadiness();
    }
  }

  /** Retries every pending pod once; failures stay pending. */
  async retryPending(): Promise<void> {
    for (const [uid, p] of [...this.#pending]) {
      if (this.#pending.get(uid) !== p) continue;
      this.#pending.delete(uid);
      log.info('retrying workload', { uid });
      if (!p.netns) {
        this.#pending.set(uid, p);
        log.warn('retrying workload failed', { uid, error: p.error });
        continue;
      }
      try {
        await this.#start(uid, p.info, p.netns);
      } catch (err) {
        log.warn('retrying workload failed', { uid, error: errorMessage(err) });
      }
    }
    this.#notifyReadiness();
  }

  /** Stops every proxy (process shutdown: 'drain'). */
  async stopAll(mode: StopMode): Promise<void> {
    const running = [...this.#running];
    this.#running.clear();
    await Promise.all(running.map(([uid, w]) => this.#stop(uid, w, mode)));
    for (const p of this.#pending.values()) p.netns?.close();
    this.#pending.clear();
    this.#notifyReadiness();
  }

  async #add(uid: WorkloadUid, info: WorkloadInfo | undefined, fd: number): Promise<void> {
    if (!info) {
      closeFds([fd]);
      throw inPodError(ZDS_PROTOCOL, `AddWorkload for ${podName(uid)} has no workload_info`);
    }
    log.info(`pod ${podName(uid)} received netns, starting proxy`, {
      name: info.name,
      namespace: info.namespace,
    });
    if (!this.#snapshotReceived) this.#snapshotNames.add(uid);
    let netns: NetnsHandle;
    try {
      netns = NetnsHandle.fromFd(fd, `netns of pod ${uid}`);
    } catch (err) {
      const error = errorMessage(err);
      this.#setPending(uid, { info, netns: undefined, error });
      throw inPodError(ZDS_PROXY_START, error, { cause: err });
    }
    const refusal = this.#refusal(uid, netns);
    if (refusal) {
      netns.close();
      log.warn(`pod ${podName(uid)} netns refused`, { error: refusal });
      throw inPodError(ZDS_NETNS_REFUSED, refusal);
    }
    const existing = this.#running.get(uid);
    if (existing?.netns.sameAs(netns)) {
      netns.close();
      this.#clearPending(uid);
      log.debug('pod already running in this netns, nothing to do', { uid });
      return;
    }
    if (existing) {
      log.info(`pod ${podName(uid)} netns changed, replacing proxy`);
      this.#running.delete(uid);
      await this.#stop(uid, existing, 'immediate');
    }
    await this.#start(uid, info, netns);
  }

  /**
   * Why `netns` cannot hold the proxy of `uid`, or undefined. Listeners opened in ztunnel's own or the
   * host's netns would capture node traffic; a second listener set in a pod splits its traffic.
   */
  #refusal(uid: WorkloadUid, netns: NetnsHandle): string | undefined {
    const what = `refusing the netns sent for pod ${podName(uid)}`;
    const own = netnsIdentityAt('/proc/self/ns/net');
    if (own && netns.sameAs(own)) return `${what}: it is ztunnel's own network namespace`;
    const root = netnsIdentityAt('/proc/1/ns/net');
    if (netns.identity.inode === INIT_NETNS_INODE || (root && netns.sameAs(root)))
      return `${what}: it is the host's root network namespace`;
    for (const [other, w] of this.#running) {
      if (other !== uid && w.netns.sameAs(netns))
        return `${what}: it is already proxied for pod ${podName(other)}`;
    }
    for (const [other, p] of this.#pending) {
      if (other !== uid && p.netns?.sameAs(netns))
        return `${what}: it is already waiting for a proxy of pod ${podName(other)}`;
    }
    return undefined;
  }

  /** Starts a proxy in `netns` (taking ownership of it); a failure leaves the pod pending. */
  async #start(uid: WorkloadUid, info: WorkloadInfo, netns: NetnsHandle): Promise<void> {
    let proxy: InPodProxy;
    try {
      proxy = await this.#factory.start(uid, info, netns);
    } catch (err) {
      const error = errorMessage(err);
      log.warn(`pod ${podName(uid)} failed to start proxy`, { error });
      this.#setPending(uid, { info, netns, error });
      throw inPodError(ZDS_PROXY_START, error, { cause: err });
    }
    this.#clearPending(uid);
    this.#running.set(uid, { info, netns, proxy });
    this.proxiesStarted++;
  }

  #keep(uid: WorkloadUid): void {
    if (this.#snapshotReceived) {
      throw inPodError(ZDS_PROTOCOL, `KeepWorkload for ${podName(uid)} after the snapshot was sent`);
    }
    log.info(`pod ${podName(uid)} keep received. will not delete it when snapshot is sent`);
    this.#snapshotNames.add(uid);
  }

  async #del(uid: WorkloadUid): Promise<void> {
    log.info('pod delete request, draining proxy', { uid });
    this.#clearPending(uid);
    if (!this.#snapshotReceived) {
      // Reconciliation at SnapshotSent stops it, since it is no longer named.
      this.#snapshotNames.delete(uid);
      return;
    }
    const w = this.#running.get(uid);
    if (!w) return;
    this.#running.delete(uid);
    await this.#stop(uid, w, 'immediate');
  }

  async #snapshotSent(): Promise<void> {
    if (this.#snapshotReceived) throw inPodError(ZDS_PROTOCOL, 'second SnapshotSent on one connection');
    log.info('pod received snapshot sent');
    const stale = [...this.#running].filter(([uid]) => !this.#snapshotNames.has(uid));
    for (const [uid] of stale) this.#running.delete(uid);
    await Promise.all(
      stale.map(([uid, w]) => {
        log.info(`pod ${podName(uid)} not in snapshot, stopping proxy`);
        return this.#stop(uid, w, 'immediate');
      }),
    );
    this.#snapshotReceived = true;
  }

  async #stop(uid: WorkloadUid, w: RunningWorkload, mode: StopMode): Promise<void> {
    try {
      await w.proxy.stop(mode);
    } catch (err) {
      log.warn('proxy stop failed', { uid, error: errorMessage(err) });
    } finally {
      w.netns.close();
      this.proxiesStopped++;
    }
  }

  #setPending(uid: WorkloadUid, p: PendingWorkload): void {
    const old = this.#pending.get(uid);
    if (old && old.netns !== p.netns) old.netns?.close();
    this.#pending.set(uid, p);
  }

  #clearPending(uid: WorkloadUid): void {
    this.#pending.get(uid)?.netns?.close();
    this.#pending.delete(uid);
  }

  #notifyReadiness(): void {
    const ready = this.ready();
    if (ready === this.#lastReady) return;
    this.#lastReady = ready;
    this.emit('readiness', ready);
  }
}
