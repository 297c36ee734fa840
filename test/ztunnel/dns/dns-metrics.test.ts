/**
 * istio_dns_* as Istio's ztunnel counts them: every query, the forwarded ones, the forwards that failed,
 * the upstream's time; labelled by query type, transport and the asking pod's canonical service/revision.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { WorkloadStore } from '../../../src/discovery/store.js';
import type { Workload } from '../../../src/discovery/types.js';
import { Registry } from '../../../src/runtime/metrics.js';
import type { WorkloadUid } from '../../../src/zds/messages.js';
import type { Forwarder } from '../../../src/ztunnel/dns/forwarder.js';
import { DnsMetrics } from '../../../src/ztunnel/dns/metrics.js';
import { type DnsPod, DnsServer, RCODE } from '../../../src/ztunnel/dns/server.js';
import type { PodSockets } from '../../../src/ztunnel/proxy/pod-sockets.js';

function query(name: string, type: 'A' | 'AAAA' | 'TXT'): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: 7,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name }],
  });
}

describe('DNS proxy metrics', () => {
  const store = new WorkloadStore();
  store.apply({
    services: [
      {
        name: 'httpbin',
        namespace: 'ns',
        hostname: 'httpbin.ns.svc.cluster.local',
        vips: [{ network: '', address: '10.96.0.10' }],
        ports: new Map(),
        subjectAltNames: [],
        canonical: true,
      },
    ],
  });
  const pod: DnsPod = {
    uid: 'pod-a' as WorkloadUid,
    info: { name: 'sleep', namespace: 'ns', serviceAccount: 'sleep' },
    sockets: {} as PodSockets,
    localWorkload: () => ({ canonicalName: 'sleep', canonicalRevision: 'v1' }) as Workload,
  };
  const forwarder = {
    async forward(_sockets: PodSockets, message: Buffer): Promise<Buffer> {
      const q = dnsPacket.decode(message);
      if (q.questions?.[0]?.name === 'broken.example.test') throw new Error('upstream timed out');
      return dnsPacket.encode({ type: 'response', id: q.id, questions: q.questions, answers: [] });
    },
  } as unknown as Forwarder;

  test('answered locally, forwarded, failed: each counted with its labels; the upstream time observed', async () => {
    const registry = new Registry();
    const server = new DnsServer(pod, {
      store,
      forwarder,
      clusterDomain: 'cluster.local',
      metrics: new DnsMetrics(registry),
    });
    await server.answer(query('httpbin.ns.svc.cluster.local', 'A'), 'udp');
    await server.answer(query('httpbin', 'A'), 'udp');
    await server.answer(query('external.example.test', 'A'), 'tcp');
    const failed = await server.answer(query('broken.example.test', 'AAAA'), 'udp');
    assert.equal(failed!.readUInt16BE(2) & 0xf, RCODE.SERVFAIL);
    await server.answer(Buffer.from([1, 2, 3]), 'udp'); // not a query: nothing to count

    const text = await registry.metrics();
    const sample = (name: string, type: string, protocol: string, extra = '') =>
      new RegExp(
        `^${name}\\{request_query_type="${type}",request_protocol="${protocol}",source_canonical_service="sleep",source_canonical_revision="v1"${extra}\\} (\\S+)$`,
        'm',
      ).exec(text)?.[1];
    assert.equal(sample('istio_dns_requests_total', 'A', 'udp'), '2');
    assert.equal(sample('istio_dns_requests_total', 'A', 'tcp'), '1');
    assert.equal(sample('istio_dns_requests_total', 'AAAA', 'udp'), '1');
    // Local answers are never forwarded.
    assert.equal(sample('istio_dns_upstream_requests_total', 'A', 'udp'), undefined);
    assert.equal(sample('istio_dns_upstream_requests_total', 'A', 'tcp'), '1');
    assert.equal(sample('istio_dns_upstream_requests_total', 'AAAA', 'udp'), '1');
    assert.equal(sample('istio_dns_upstream_failures_total', 'AAAA', 'udp'), '1');
    assert.equal(sample('istio_dns_upstream_failures_total', 'A', 'tcp'), undefined);
    assert.equal(sample('istio_dns_upstream_request_duration_seconds_count', 'A', 'tcp'), '1');
    assert.equal(
      sample('istio_dns_upstream_request_duration_seconds_bucket', 'A', 'tcp', ',le="\\+Inf"'),
      '1',
    );
    assert.ok(Number(sample('istio_dns_upstream_request_duration_seconds_sum', 'A', 'tcp')) > 0);
    assert.match(text, /^# TYPE istio_dns_upstream_request_duration_seconds histogram$/m);
  });
});
