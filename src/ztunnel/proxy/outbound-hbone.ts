/**
 * HboneHandlers.outbound: a captured connection whose route is HBONE goes through the pod's pool to
 * `<peer ip>:15008` as a CONNECT stream; the app's bytes read before the answer go out with it (early
 * data), 200 opens the pipe, anything else resets the downstream.
 */
import type { Socket } from 'node:net';
import { errorMessage } from '../../errors.js';
import { type DialOptions, dialHbone } from '../../hbone/client.js';
import { SocketEarlyData } from '../../hbone/early-data.js';
import { type BaggageSource, connectHeaders } from '../../hbone/headers.js';
import { pipeSocketStream } from '../../hbone/pipe.js';
import type { HbonePool } from '../../hbone/pool.js';
import type { KeepaliveOptions } from '../../hbone/settings.js';
import type { HboneTlsContexts } from '../../hbone/tls.js';
import type { TunnelStream, TunnelTransport } from '../../hbone/transport.js';
import { isSpiffeId, type SpiffeId } from '../../identity/spiffe.js';
import { unmapIPv4 } from '../../sys/index.js';
import type { ConnectionRecord } from './connection-record.js';
import type { PodContext } from './context.js';
import { podIdentity } from './pod-identity.js';
import { responseFlagFor } from './response-flag.js';
import type { OutboundRoute } from './route.js';

type HboneRoute = Extract<OutboundRoute, { kind: 'hbone' }>;

export interface OutboundDeps {
  contexts: HboneTlsContexts;
  pool: HbonePool;
  trustDomain: string;
  keepalive?: KeepaliveOptions;
  transport: TunnelTransport;
}

function baggageOf(pod: PodContext): BaggageSource {
  const w = pod.localWorkload();
  if (!w) return { namespace: pod.info.namespace, workloadType: 'pod', workloadName: pod.info.name };
  return {
    clusterId: w.clusterId,
    namespace: w.namespace,
    workloadType: w.workloadType,
    workloadName: w.workloadName || w.name,
    canonicalName: w.canonicalName,
    canonicalRevision: w.canonicalRevision,
    region: w.locality?.region,
    zone: w.locality?.zone,
  };
}

export function handleHboneOutbound(
  deps: OutboundDeps,
  pod: PodContext,
  downstream: Socket,
  route: HboneRoute,
  record: ConnectionRecord,
): void {
  // Until the pipe owns it, a reset from the app must not become an unhandled 'error'.
  downstream.on('error', () => {});
  const source = podIdentity(pod, deps.trustDomain);
  const expected = route.expectedIdentities.filter(isSpiffeId) as SpiffeId[];
  const info = record.info;
  info.srcIdentity = source;
  info.securityPolicy = 'mutual_tls';
  record.opened();
  const dial: DialOptions = {
    connect: () => pod.sockets.connect({ host: route.host, port: route.port }),
    host: route.host,
    port: route.port,
    source,
    expected,
    connectTimeoutMs: pod.deps.connectTimeoutMs,
    keepalive: deps.keepalive,
    transport: deps.transport,
  };
  const headers = connectHeaders({
    targetIp: route.targetHost,
    targetPort: route.targetPort,
    srcIp: unmapIPv4(downstream.remoteAddress ?? ''),
    srcPort: downstream.remotePort ?? 0,
    serviceHostname: route.service?.hostname,
    baggage: baggageOf(pod),
  });
  // The app's first bytes go with the CONNECT, not a round trip after it.
  const early = new SocketEarlyData(downstream);
  void (async () => {
    let stream: TunnelStream;
    try {
      stream = await deps.pool.connect(
        { scope: pod.uid, source, expected, host: route.host, port: route.port },
        () => dialHbone(deps.contexts, dial),
        headers,
        (conn) => {
          info.dstIdentity = conn.peer;
        },
        early,
      );
    } catch (err) {
      if (downstream.destroyed) {
        // The client gave up while the tunnel was opening (its reset reset the stream): no tunnel failure.
        record.close(undefined, 'downstream closed before the tunnel opened');
        return;
      }
      info.responseFlags = responseFlagFor(err);
      downstream.resetAndDestroy();
      record.close(undefined, errorMessage(err));
      return;
    }
    // Labels are taken once the outcome is known, so the peer's identity shows in the metrics too.
    record.count();
    if (downstream.destroyed) {
      // The client gave up while the tunnel was opening: nothing to pipe.
      stream.reset('downstream closed before the tunnel opened');
      record.close(undefined, 'downstream closed before the tunnel opened');
      return;
    }
    const result = await pipeSocketStream(downstream, stream);
    record.close(
      { downstreamToUpstream: result.socketToStream, upstreamToDownstream: result.streamToSocket },
      result.error,
    );
  })();
}
