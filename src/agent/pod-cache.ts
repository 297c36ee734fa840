/**
 * Pod UID -> workload info and the pod's netns handle (istio-cni `pod_cache.go`). The cache owns
 * the handles: it closes a duplicate on upsert, and whoever `take`s an entry closes its handle.
 * A pod's netns is keyed by its identity (device, inode), never by path: a path can name a new
 * sandbox's netns while a handle still holds the old one. Each netns carries when it was named (a
 * CNI event's arrival, a /proc scan), so a netns named before the cached one can never replace it.
 */
import type { NetnsHandle } from '../sys/index.js';
import { type SnapshotPod, type WorkloadInfo, workloadUid } from '../zds/index.js';

export interface CachedPod {
  info: WorkloadInfo;
  /** null: the pod is known but its netns is not (a snapshot tells ztunnel to Keep it). */
  netns: NetnsHandle | null;
  /** process.hrtime.bigint() when `netns` was named by its source; 0n without netns. */
  seenAt: bigint;
}

export class PodCache {
  readonly #pods = new Map<string, CachedPod>();

  get size(): number {
    return this.#pods.size;
  }

  /** Adds a placeholder without netns unless the pod is already known. */
  ensure(uid: string, info: WorkloadInfo): void {
    if (!this.#pods.has(uid)) this.#pods.set(uid, { info, netns: null, seenAt: 0n });
  }

  /**
   * Records `netns` (named at `seenAt`) for the pod and returns the handle now cached: the old one
   * when it names the same namespace (the new handle is closed), else the new one (the replaced
   * handle is closed). Returns undefined, closing `netns`, when it is stale: another namespace than
   * the cached one, named before it (an event that waited while a newer sandbox was enrolled).
   */
  upsert(
    uid: string,
    info: WorkloadInfo,
    netns: NetnsHandle,
    seenAt: bigint = process.hrtime.bigint(),
  ): NetnsHandle | undefined {
    const old = this.#pods.get(uid);
    if (old?.netns && !old.netns.closed && old.netns.sameAs(netns)) {
      if (old.netns !== netns) netns.close();
      old.info = info;
      if (seenAt > old.seenAt) old.seenAt = seenAt;
      return old.netns;
    }
    if (old?.netns && !old.netns.closed && seenAt < old.seenAt) {
      netns.close();
      return undefined;
    }
    if (old?.netns && old.netns !== netns) old.netns.close();
    this.#pods.set(uid, { info, netns, seenAt });
    return netns;
  }

  get(uid: string): CachedPod | undefined {
    return this.#pods.get(uid);
  }

  /** Removes and returns the entry; the caller closes its handle. Taking twice returns undefined. */
  take(uid: string): CachedPod | undefined {
    const entry = this.#pods.get(uid);
    this.#pods.delete(uid);
    return entry;
  }

  snapshot(): SnapshotPod[] {
    return [...this.#pods].map(([uid, e]) => ({ uid: workloadUid(uid), info: e.info, netns: e.netns }));
  }

  /** Closes every handle (agent shutdown; ztunnel holds its own copies). */
  clear(): void {
    for (const e of this.#pods.values()) e.netns?.close();
    this.#pods.clear();
  }
}
