/**
 * Outbound (15001): the pod's own connections, captured by the nat REDIRECT rule. The dialled
 * address comes back from SO_ORIGINAL_DST; the route decides passthrough, direct or HBONE.
 */
import { isIP, type Socket } from 'node:net';
import { errorMessage } from '../../errors.js';
import { ILLEGAL_PORTS } from '../../node/contract.js';
import { originalDst, unmapIPv4 } from '../../sys/index.js';
import { hostPort } from './connection-info.js';
import { ConnectionRecord } from './connection-record.js';
import type { PodContext } from './context.js';
import { selectRoute, spiffeIdOf } from './route.js';
import { proxyToUpstream } from './upstream.js';

function isLoopback(ip: string): boolean {
  return ip === '::1' || (isIP(ip) === 4 && ip.startsWith('127.'));
}

/** The original destination of a captured connection, or the local address when it was not NATed. */
export function destinationOf(socket: Socket): { address: string; port: number } {
  try {
    const d = originalDst(socket);
    return { address: unmapIPv4(d.address), port: d.port };
  } catch {
    return { address: unmapIPv4(socket.localAddress ?? ''), port: socket.localPort ?? 0 };
  }
}

export function handleOutbound(pod: PodContext, downstream: Socket): void {
  downstream.setNoDelay(true);
  const dst = destinationOf(downstream);
  proxyOutbound(pod, downstream, dst);
}

/** The outbound path after the destination is known (also the SOCKS5 listener's). */
export function proxyOutbound(
  pod: PodContext,
  downstream: Socket,
  dst: { address: string; port: number },
): void {
  const record = new ConnectionRecord(pod.deps.metrics, {
    direction: 'outbound',
    srcAddr: hostPort(unmapIPv4(downstream.remoteAddress ?? ''), downstream.remotePort ?? 0),
    dstAddr: hostPort(dst.address, dst.port),
  });
  if (isLoopback(dst.address) && ILLEGAL_PORTS.has(dst.port)) {
    record.reject('attempted recursive call to ourselves');
    downstream.resetAndDestroy();
    return;
  }
  const route = selectRoute(pod.deps.store, dst);
  const info = record.info;
  info.srcWorkload = pod.localWorkload();
  switch (route.kind) {
    case 'reject':
      record.reject(route.reason);
      downstream.resetAndDestroy();
      return;
    case 'passthrough':
      void proxyToUpstream(pod, downstream, { host: route.host, port: route.port }, record);
      return;
    case 'direct':
      info.dstWorkload = route.workload;
      info.dstService = route.service;
      info.dstAddr = hostPort(route.host, route.port);
      void proxyToUpstream(pod, downstream, { host: route.host, port: route.port }, record);
      return;
    case 'hbone': {
      info.dstWorkload = route.workload;
      info.dstService = route.service;
      info.dstAddr = hostPort(route.host, route.port);
      info.dstHboneAddr = hostPort(route.targetHost, route.targetPort);
      info.dstIdentity = spiffeIdOf(route.workload);
      try {
        pod.deps.hbone.outbound(pod, downstream, route, record);
      } catch (err) {
        record.reject(errorMessage(err));
        downstream.resetAndDestroy();
      }
    }
  }
}
