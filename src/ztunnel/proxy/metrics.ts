/**
 * Istio's L4 traffic metrics (reference ztunnel.md §7), so existing dashboards keep working.
 * Bytes follow Istio's convention: downstream->upstream counts as `received`, the reverse as `sent`.
 */

import type { Workload } from '../../discovery/types.js';
import { Counter, type Registry } from '../../runtime/metrics.js';
import type { ConnectionInfo } from './connection-info.js';

const LABELS = [
  'reporter',
  'source_workload',
  'source_canonical_service',
  'source_canonical_revision',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_cluster',
  'destination_service',
  'destination_service_namespace',
  'destination_service_name',
  'destination_workload',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_cluster',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
] as const;

type Labels = Record<(typeof LABELS)[number], string>;

const UNKNOWN = 'unknown';

type Side = 'source' | 'destination';
type WorkloadLabel = 'workload' | 'canonical_service' | 'canonical_revision' | 'workload_namespace';
type PeerLabel = WorkloadLabel | 'principal' | 'app' | 'version' | 'cluster';

/** The labels Istio gives each end of a connection: its workload, and the identity it proved. */
function peerLabels<S extends Side>(
  side: S,
  w: Workload | undefined,
  principal: string | undefined,
): Record<`${S}_${PeerLabel}`, string> {
  const values: Record<PeerLabel, string> = {
    workload: w?.workloadName || UNKNOWN,
    canonical_service: w?.canonicalName || UNKNOWN,
    canonical_revision: w?.canonicalRevision || UNKNOWN,
    workload_namespace: w?.namespace || UNKNOWN,
    principal: principal || UNKNOWN,
    app: w?.canonicalName || UNKNOWN,
    version: w?.canonicalRevision || UNKNOWN,
    cluster: w?.clusterId || UNKNOWN,
  };
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [`${side}_${k}`, v])) as Record<
    `${S}_${PeerLabel}`,
    string
  >;
}

function labelsOf(c: ConnectionInfo): Labels {
  const svc = c.dstService;
  return {
    reporter: c.direction === 'outbound' ? 'source' : 'destination',
    ...peerLabels('source', c.srcWorkload, c.srcIdentity),
    destination_service: svc?.hostname || UNKNOWN,
    destination_service_namespace: svc?.namespace || UNKNOWN,
    destination_service_name: svc?.name || UNKNOWN,
    ...peerLabels('destination', c.dstWorkload, c.dstIdentity),
    request_protocol: 'tcp',
    response_flags: c.responseFlags,
    connection_security_policy: c.securityPolicy,
  };
}

export class TrafficMetrics {
  readonly opened: Counter<(typeof LABELS)[number]>;
  readonly closed: Counter<(typeof LABELS)[number]>;
  readonly received: Counter<(typeof LABELS)[number]>;
  readonly sent: Counter<(typeof LABELS)[number]>;

  constructor(registry: Registry) {
    const make = (name: string, help: string) =>
      new Counter({ name, help, labelNames: LABELS, registers: [registry] });
    this.opened = make('istio_tcp_connections_opened_total', 'The total number of TCP connections opened');
    this.closed = make('istio_tcp_connections_closed_total', 'The total number of TCP connections closed');
    this.received = make(
      'istio_tcp_received_bytes_total',
      'The size of total bytes received during request in case of a TCP connection',
    );
    this.sent = make(
      'istio_tcp_sent_bytes_total',
      'The size of total bytes sent during response in case of a TCP connection',
    );
  }

  /** Labels are resolved once per connection, when it opens. */
  connectionOpened(c: ConnectionInfo): Labels {
    const labels = labelsOf(c);
    this.opened.inc(labels);
    return labels;
  }

  connectionClosed(labels: Labels, downstreamToUpstream: number, upstreamToDownstream: number): void {
    this.closed.inc(labels);
    if (downstreamToUpstream > 0) this.received.inc(labels, downstreamToUpstream);
    if (upstreamToDownstream > 0) this.sent.inc(labels, upstreamToDownstream);
  }
}

export type { Labels as TrafficLabels };
