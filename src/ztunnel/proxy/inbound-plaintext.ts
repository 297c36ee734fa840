/**
 * Inbound plaintext (15006): connections from outside the pod to one of its apps, captured by
 * TPROXY (the accepted socket's local address is the original destination) or REDIRECT
 * (SO_ORIGINAL_DST). The app is dialled from the pod netns with the client's address as source.
 */
import type { Socket } from 'node:net';
import { ILLEGAL_PORTS } from '../../node/contract.js';
import { unmapIPv4 } from '../../sys/index.js';
import { hostPort } from './connection-info.js';
import { ConnectionRecord } from './connection-record.js';
import type { PodContext } from './context.js';
import { destinationOf } from './outbound.js';
import { proxyToUpstream } from './upstream.js';

export function handleInboundPlaintext(pod: PodContext, downstream: Socket): void {
  downstream.setNoDelay(true);
  const dst = destinationOf(downstream);
  const srcIp = unmapIPv4(downstream.remoteAddress ?? '');
  const record = new ConnectionRecord(pod.deps.metrics, {
    direction: 'inbound',
    srcAddr: hostPort(srcIp, downstream.remotePort ?? 0),
    dstAddr: hostPort(dst.address, dst.port),
  });
  record.info.srcWorkload = pod.deps.store.workloadByIp(srcIp);
  record.info.dstWorkload = pod.localWorkload();
  if (ILLEGAL_PORTS.has(dst.port)) {
    record.reject('attempted recursive call to ourselves');
    downstream.resetAndDestroy();
    return;
  }
  // Plaintext carries no identity: policies are evaluated as for an unauthenticated peer.
  const denied = pod.deps.inboundPolicy(pod, record, dst, downstream);
  if (denied) {
    record.info.responseFlags = 'DENY';
    record.reject(`connection closed due to policy rejection: ${denied}`);
    downstream.resetAndDestroy();
    return;
  }
  // Spoofing needs a transparent listener, and is pointless (and fails) when the client is the pod itself.
  const spoofSource = pod.transparent && srcIp !== dst.address ? srcIp : undefined;
  void proxyToUpstream(pod, downstream, { host: dst.address, port: dst.port, spoofSource }, record);
}
