/** The identity a pod proxy speaks as: its workload's from the store, else from the ZDS workload info. */

import type { Workload } from '../../discovery/types.js';
import { formatSpiffeId, type SpiffeId } from '../../identity/spiffe.js';
import type { PodContext } from './context.js';

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

/**
 * Each workload's identity, formatted once: it is asked for on every connection, and the store replaces a
 * workload's object when it changes, so an object's identity never goes stale.
 */
const byWorkload = new WeakMap<Workload, SpiffeId>();

export function podIdentity(pod: PodContext, trustDomain = DEFAULT_TRUST_DOMAIN): SpiffeId {
  const w = pod.localWorkload();
  if (w) {
    let id = byWorkload.get(w);
    if (id === undefined) {
      id = formatSpiffeId({
        trustDomain: w.trustDomain,
        namespace: w.namespace,
        serviceAccount: w.serviceAccount,
      });
      byWorkload.set(w, id);
    }
    return id;
  }
  return formatSpiffeId({
    trustDomain,
    namespace: pod.info.namespace,
    serviceAccount: pod.info.serviceAccount,
  });
}
