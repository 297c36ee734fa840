/**
 * Istio's L4 traffic metrics (reference ztunnel.md §7), so existing dashboards keep working.
 * Bytes follow Istio's convention: downstream->upstream counts as `received`, the reverse as `sent`.
 */

import { Counter, type CounterSeries, type Registry } from '../../runtime/metrics.js';
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

/**
 * The labels of a connection, in Istio's order: each end's workload and the identity it proved, the
 * service, the protocol and outcome. Spelled out rather than generated per side: this runs for every
 * connection, and building the keys at run time cost more than the rest of the record.
 */
function labelsOf(c: ConnectionInfo): Labels {
  const src = c.srcWorkload;
  const dst = c.dstWorkload;
  const svc = c.dstService;
  return {
    reporter: c.direction === 'outbound' ? 'source' : 'destination',
    source_workload: src?.workloadName || UNKNOWN,
    source_canonical_service: src?.canonicalName || UNKNOWN,
    source_canonical_revision: src?.canonicalRevision || UNKNOWN,
    source_workload_namespace: src?.namespace || UNKNOWN,
    source_principal: c.srcIdentity || UNKNOWN,
    source_app: src?.canonicalName || UNKNOWN,
    source_version: src?.canonicalRevision || UNKNOWN,
    source_cluster: src?.clusterId || UNKNOWN,
    destination_service: svc?.hostname || UNKNOWN,
    destination_service_namespace: svc?.namespace || UNKNOWN,
    destination_service_name: svc?.name || UNKNOWN,
    destination_workload: dst?.workloadName || UNKNOWN,
    destination_canonical_service: dst?.canonicalName || UNKNOWN,
    destination_canonical_revision: dst?.canonicalRevision || UNKNOWN,
    destination_workload_namespace: dst?.namespace || UNKNOWN,
    destination_principal: c.dstIdentity || UNKNOWN,
    destination_app: dst?.canonicalName || UNKNOWN,
    destination_version: dst?.canonicalRevision || UNKNOWN,
    destination_cluster: dst?.clusterId || UNKNOWN,
    request_protocol: 'tcp',
    response_flags: c.responseFlags,
    connection_security_policy: c.securityPolicy,
  };
}

/** One connection's series of the four counters, its labels fixed when it was counted opened. */
export interface TrafficSeries {
  readonly labels: Labels;
  readonly closed: CounterSeries;
  readonly received: CounterSeries;
  readonly sent: CounterSeries;
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

  /** Labels are resolved once per connection, when it opens; so are its series. */
  connectionOpened(c: ConnectionInfo): TrafficSeries {
    const labels = labelsOf(c);
    this.opened.labels(labels).inc();
    return {
      labels,
      closed: this.closed.labels(labels),
      received: this.received.labels(labels),
      sent: this.sent.labels(labels),
    };
  }

  connectionClosed(series: TrafficSeries, downstreamToUpstream: number, upstreamToDownstream: number): void {
    series.closed.inc();
    if (downstreamToUpstream > 0) series.received.inc(downstreamToUpstream);
    if (upstreamToDownstream > 0) series.sent.inc(upstreamToDownstream);
  }
}
