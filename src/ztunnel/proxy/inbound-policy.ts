/**
 * L4 authorization of inbound plaintext (15006): no identity, so principal/namespace/service-account
 * matches never match. Allowed connections are tracked so a policy change that now denies them cuts them.
 */
import type { WorkloadStore } from '../../discovery/store.js';
import { applicablePolicies } from '../../policy/applicable.js';
import { authorize } from '../../policy/authorize.js';
import type { ConnectionTracker } from '../../policy/tracker.js';
import { logConnectionFailed } from './access-log.js';
import type { InboundPolicy } from './context.js';

/** `ip:port` or `[ip]:port` -> ip. */
function ipOf(addr: string): string {
  return addr.startsWith('[') ? addr.slice(1, addr.indexOf(']')) : addr.slice(0, addr.lastIndexOf(':'));
}

export function plaintextInboundPolicy(store: WorkloadStore, tracker: ConnectionTracker): InboundPolicy {
  return (pod, record, dst, downstream) => {
    const policies = () => applicablePolicies(store, pod.localWorkload(), pod.info.namespace);
    const attributes = { srcIp: ipOf(record.info.srcAddr), dstIp: dst.address, dstPort: dst.port };
    const verdict = authorize(policies(), attributes);
    if (!verdict.allowed) return verdict.reason;
    record.trackPolicy(tracker, {
      attributes,
      policies,
      close: (reason) => {
        logConnectionFailed(record.info, reason);
        downstream.resetAndDestroy();
      },
    });
    return undefined;
  };
}
