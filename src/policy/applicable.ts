/** The policies that guard one destination pod: its namespace's, global ones and those selecting it. */
import type { WorkloadStore } from '../discovery/store.js';
import type { Authorization, Workload } from '../discovery/types.js';

/** With no workload in the store yet, only namespace and global policies can select the pod. */
export function applicablePolicies(
  store: WorkloadStore,
  workload: Workload | undefined,
  namespace: string,
): Authorization[] {
  if (workload) return store.policiesFor(workload);
  return store.policies.filter(
    (p) => p.scope === 'Global' || (p.scope === 'Namespace' && p.namespace === namespace),
  );
}
