/**
 * Start-up reconciliation (istio-cni `syncHostAddrSets` + `ConstructInitialSnapshot`): the pods
 * annotated `enabled` are the snapshot. Their IPs are put back into the probe set (extras pruned
 * only when every snapshot pod had IPs), their netns found by /proc scan and cached, and their
 * rules optionally repaired. Pods whose netns is not found stay cached without one (ZDS Keep).
 */
import type { V1Pod } from '@kubernetes/client-node';
import { errorMessage } from '../errors.js';
import { logger } from '../runtime/log.js';
import type { NetnsHandle } from '../sys/index.js';
import type { NetnsFinder } from './netns-finder.js';
import type { PodCache } from './pod-cache.js';
import { isTerminal, isZtunnelPod, podIps, podRef, podUid, redirectionState, workloadInfo } from './pods.js';

const log = logger('ambit::agent::startup');

export interface StartupProbeSet {
  addPodIp(uid: string, ip: string): Promise<void>;
  entries(): Promise<Map<string, string>>;
  /** Deletes `ip` if it still belongs to `uid`. */
  removePodIp(uid: string, ip: string): Promise<boolean>;
}

export function snapshotPods(pods: readonly V1Pod[], systemNamespace: string): V1Pod[] {
  return pods.filter(
    (p) => redirectionState(p) === 'enabled' && !isTerminal(p) && !isZtunnelPod(p, systemNamespace),
  );
}

/** Returns how many entries were pruned, or null when pruning was skipped (incomplete snapshot). */
export async function syncProbeSet(pods: readonly V1Pod[], probes: StartupProbeSet): Promise<number | null> {
  let complete = true;
  const added = new Set<string>();
  for (const pod of pods) {
    const ips = podIps(pod);
    if (ips.length === 0) complete = false;
    for (const ip of ips) {
      try {
        await probes.addPodIp(podUid(pod), ip);
        added.add(ip);
      } catch (err) {
        log.warn('cannot restore probe set entry', { pod: podRef(pod), ip, error: errorMessage(err) });
      }
    }
  }
  if (!complete) {
    log.warn('some enrolled pods have no IPs yet; not pruning the probe set');
    return null;
  }
  let pruned = 0;
  for (const [ip, uid] of await probes.entries()) {
    if (added.has(ip)) continue;
    if (await probes.removePodIp(uid, ip)) pruned++;
  }
  return pruned;
}

export async function buildSnapshot(
  pods: readonly V1Pod[],
  cache: PodCache,
  finder: Pick<NetnsFinder, 'find'>,
  repair?: (netns: NetnsHandle, pod: V1Pod) => Promise<unknown>,
): Promise<void> {
  for (const pod of pods) cache.ensure(podUid(pod), workloadInfo(pod));
  const found = await finder.find(pods.map((p) => ({ uid: podUid(p), ips: podIps(p) })));
  for (const pod of pods) {
    const uid = podUid(pod);
    const handle = found.get(uid);
    if (!handle) {
      log.warn('netns of enrolled pod not found; ztunnel is told to keep it', { pod: podRef(pod), uid });
      continue;
    }
    const netns = cache.upsert(uid, workloadInfo(pod), handle);
    if (netns && repair) {
      await repair(netns, pod).catch((err) =>
        log.error('cannot reconcile rules of enrolled pod', { pod: podRef(pod), error: errorMessage(err) }),
      );
    }
  }
  log.info('initial snapshot built', { pods: pods.length, withNetns: found.size });
}
