/**
 * The DNS proxy's metrics, as Istio's ztunnel names and labels them (its binary's help texts, marked
 * unstable there too): every query asked, the ones forwarded upstream, the forwards that failed, and how
 * long the upstream took. Labelled with the query type, the transport and the asking pod's canonical
 * service and revision.
 */
import type { Workload } from '../../discovery/types.js';
import { Counter, Histogram, type Registry } from '../../runtime/metrics.js';

const LABELS = [
  'request_query_type',
  'request_protocol',
  'source_canonical_service',
  'source_canonical_revision',
] as const;

type Label = (typeof LABELS)[number];

export type DnsLabels = Record<Label, string>;

export function dnsLabels(
  queryType: string,
  protocol: 'udp' | 'tcp',
  source: Workload | undefined,
): DnsLabels {
  return {
    request_query_type: queryType,
    request_protocol: protocol,
    source_canonical_service: source?.canonicalName || 'unknown',
    source_canonical_revision: source?.canonicalRevision || 'unknown',
  };
}

export class DnsMetrics {
  readonly requests: Counter<Label>;
  readonly upstreamRequests: Counter<Label>;
  readonly upstreamFailures: Counter<Label>;
  readonly upstreamDuration: Histogram<Label>;

  constructor(registry: Registry) {
    const counter = (name: string, help: string) =>
      new Counter({ name, help, labelNames: LABELS, registers: [registry] });
    this.requests = counter('istio_dns_requests_total', 'Total number of DNS requests (unstable)');
    this.upstreamRequests = counter(
      'istio_dns_upstream_requests_total',
      'Total number of DNS requests forwarded to upstream (unstable)',
    );
    this.upstreamFailures = counter(
      'istio_dns_upstream_failures_total',
      'Total number of DNS requests that failed to forward upstream (unstable)',
    );
    this.upstreamDuration = new Histogram({
      name: 'istio_dns_upstream_request_duration_seconds',
      help: 'Total time in seconds Istio takes to get DNS response from upstream (unstable)',
      labelNames: LABELS,
      registers: [registry],
    });
  }
}
