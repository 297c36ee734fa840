/** The identity a pod proxy speaks as: its workload's from the store, else from the ZDS workload info. */
import { formatSpiffeId, type SpiffeId } from '../../identity/spiffe.js';
import type { PodContext } from './context.js';

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

export function podIdentity(pod: PodContext, trustDomain = DEFAULT_TRUST_DOMAIN): SpiffeId {
  const w = pod.localWorkload();
  if (w) {
    return formatSpiffeId({
      trustDomain: w.trustDomain,
      namespace: w.namespace,
      serviceAccount: w.serviceAccount,
    });
  }
  return formatSpiffeId({
    trustDomain,
    namespace: pod.info.namespace,
    serviceAccount: pod.info.serviceAccount,
  });
}
