/**
 * Inbound plaintext (15006): connections from outside the pod to one of its apps, captured by
 * TPROXY (the accepted socket's local address is the original destination) or REDIRECT
 * (SO_ORIGINAL_DST). The app is dialled from the pod netns with the client's address as source.
 */
import type { Socket } from 'node:net';
import { ILLEGAL_PORTS } from '../../node/contract.js';
import { unmapIPv4 } from '../../sys/index.js';
import { logConnectionFailed } from './access-log.js';
import { type ConnectionInfo, hostPort } from './connection-info.js';
import type { PodContext } from './context.js';
import { destinationOf } from './outbound.js';
import { proxyToUpstream } from './upstream.js';

export function handleInboundPlaintext(pod: PodContext, downstream: Socket): void {
  downstream.setNoDelay(true);
  const dst = destinationOf(downstream);
  const srcIp = unmapIPv4(downstream.remoteAddress ?? '');
  const info: ConnectionInfo = {
    direction: 'inbound',
    srcAddr: hostPort(srcIp, downstream.remotePort ?? 0),
    srcWorkload: pod.deps.store.workloadByIp(srcIp),
    dstAddr: hostPort(dst.address, dst.port),
    dstWorkload: pod.localWorkload(),
    securityPolicy: 'unknown',
    responseFlags: '-',
    startedAt: Date.now(),
  };
  if (ILLEGAL_PORTS.has(dst.port)) {
    logConnectionFailed(info, 'attempted recursive call to ourselves');
    downstream.resetAndDestroy();
    return;
  }
  // Plaintext carries no identity: policies are evaluated as for an unauthenticated peer.
  const denied = pod.deps.inboundPolicy(pod, info, dst, downstream);
  if (denied) {
    info.responseFlags = 'DENY';
    logConnectionFailed(info, `connection closed due to policy rejection: ${denied}`);
    downstream.resetAndDestroy();
    return;
  }
  // Spoofing needs a transparent listener, and is pointless (and fails) when the client is the pod itself.
  const spoofSource = pod.transparent && srcIp !== dst.address ? srcIp : undefined;
  void proxyToUpstream(pod, downstream, { host: dst.address, port: dst.port, spoofSource }, info);
}
