/**
 * Istio's L4 traffic metrics (reference ztunnel.md §7), so existing dashboards keep working.
 * Bytes follow Istio's convention: downstream->upstream counts as `received`, the reverse as `sent`.
 */

import type { Workload } from '../../discovery/types.js';
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

/** What Istio labels each end of a connection with: its workload, and the identity it proved. */
const PEER_LABELS: ReadonlyArray<readonly [string, (w: Workload | undefined, principal?: string) => string]> =
  [
    ['workload', (w) => w?.workloadName || UNKNOWN],
    ['canonical_service', (w) => w?.canonicalName || UNKNOWN],
    ['canonical_revision', (w) => w?.canonicalRevision || UNKNOWN],
    ['workload_namespace', (w) => w?.namespace || UNKNOWN],
    ['principal', (_, principal) => principal || UNKNOWN],
    ['app', (w) => w?.canonicalName || UNKNOWN],
    ['version', (w) => w?.canonicalRevision || UNKNOWN],
    ['cluster', (w) => w?.clusterId || UNKNOWN],
  ];
// The label names once, at load: building them per connection cost more than the rest of the record.
const SOURCE = PEER_LABELS.map(([name, value]) => [`source_${name}`, value] as const);
const DESTINATION = PEER_LABELS.map(([name, value]) => [`destination_${name}`, value] as const);

/** The labels of a connection, in Istio's order: each end, the service, the protocol and outcome. */
function labelsOf(c: ConnectionInfo): Labels {
  const labels: Record<string, string> = { reporter: c.direction === 'outbound' ? 'source' : 'destination' };
  for (const [name, value] of SOURCE) labels[name] = value(c.srcWorkload, c.srcIdentity);
  const svc = c.dstService;
  labels['destination_service'] = svc?.hostname || UNKNOWN;
  labels['destination_service_namespace'] = svc?.namespace || UNKNOWN;
  labels['destination_service_name'] = svc?.name || UNKNOWN;
  for (const [name, value] of DESTINATION) labels[name] = value(c.dstWorkload, c.dstIdentity);
  labels['request_protocol'] = 'tcp';
  labels['response_flags'] = c.responseFlags;
  labels['connection_security_policy'] = c.securityPolicy;
  return labels as Labels;
}

/** One connection's series of the four counters, its labels fixed when it was counted opened. */
export interface TrafficSeries {
  readonly labels: Labels;
  readonly opened: CounterSeries;
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

  /** Labels are resolved once per connection, when it opens; so are its series and their key. */
  connectionOpened(c: ConnectionInfo): TrafficSeries {
    const labels = labelsOf(c);
    const key = this.opened.keyOf(labels);
    const series: TrafficSeries = {
      labels,
      opened: this.opened.labels(labels, key),
      closed: this.closed.labels(labels, key),
      received: this.received.labels(labels, key),
      sent: this.sent.labels(labels, key),
    };
    series.opened.inc();
    return series;
  }

  connectionClosed(series: TrafficSeries, downstreamToUpstream: number, upstreamToDownstream: number): void {
    series.closed.inc();
    if (downstreamToUpstream > 0) series.received.inc(downstreamToUpstream);
    if (upstreamToDownstream > 0) series.sent.inc(upstreamToDownstream);
  }
}
