/**
 * The connection record: counted once with the labels known when first counted, ended once (a second
 * end is ignored), bytes in the access log flipped by direction as ztunnel logs them, metrics not.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { WorkloadStore } from '../../../src/discovery/store.js';
import { ConnectionTracker } from '../../../src/policy/tracker.js';
import { setLogLevel, setLogSink } from '../../../src/runtime/log.js';
import { Registry } from '../../../src/runtime/metrics.js';
import { ConnectionRecord } from '../../../src/ztunnel/proxy/connection-record.js';
import { TrafficMetrics } from '../../../src/ztunnel/proxy/metrics.js';

const lines: string[] = [];

async function metric(
  registry: Registry,
  name: string,
): Promise<{ labels: Record<string, unknown>; value: number }[]> {
  const m = await registry.getSingleMetric(name)?.get();
  return (m?.values ?? []).map((v) => ({ labels: v.labels, value: v.value }));
}

describe('ConnectionRecord', () => {
  let registry: Registry;
  let metrics: TrafficMetrics;

  beforeEach(() => {
    lines.length = 0;
    setLogSink({ write: (l: string) => void lines.push(l) });
    registry = new Registry();
    metrics = new TrafficMetrics(registry);
  });
  afterEach(() => setLogSink(process.stdout));

  const flagsOf = async (name: string) => (await metric(registry, name)).map((c) => c.labels.response_flags);

  /** A connection of `direction` that moved 11 bytes client->server and 22 back. */
  function closeOne(direction: 'inbound' | 'outbound'): void {
    const record = new ConnectionRecord(metrics, {
      direction,
      srcAddr: '10.0.0.1:4000',
      dstAddr: '10.0.0.2:80',
    });
    record.close({ downstreamToUpstream: 11, upstreamToDownstream: 22 });
  }

  it('outbound: bytes_sent is client->server; received counts downstream->upstream', async () => {
    closeOne('outbound');
    const complete = lines.filter((l) => l.includes('connection complete'));
    assert.equal(complete.length, 1);
    assert.match(complete[0]!, /bytes_sent=11 bytes_recv=22/);
    assert.equal((await metric(registry, 'istio_tcp_received_bytes_total'))[0]?.value, 11);
    assert.equal((await metric(registry, 'istio_tcp_sent_bytes_total'))[0]?.value, 22);
    assert.equal((await metric(registry, 'istio_tcp_connections_opened_total'))[0]?.value, 1);
    assert.equal((await metric(registry, 'istio_tcp_connections_closed_total'))[0]?.value, 1);
  });

  it('inbound: bytes_sent is server->client; the metrics keep downstream->upstream as received', async () => {
    closeOne('inbound');
    assert.match(lines.find((l) => l.includes('connection complete'))!, /bytes_sent=22 bytes_recv=11/);
    assert.equal((await metric(registry, 'istio_tcp_received_bytes_total'))[0]?.value, 11);
    const opened = await metric(registry, 'istio_tcp_connections_opened_total');
    assert.equal(opened[0]?.labels.reporter, 'destination');
  });

  it('labels are taken when first counted: a flag set later does not change them', async () => {
    const record = new ConnectionRecord(metrics, { direction: 'outbound', srcAddr: 'a:1', dstAddr: 'b:2' });
    record.count();
    record.info.responseFlags = 'CONNECT';
    record.close(undefined, 'connection failed: ECONNREFUSED');
    assert.deepEqual(await flagsOf('istio_tcp_connections_closed_total'), ['-']);
    assert.match(
      lines.find((l) => l.includes('connection complete'))!,
      /\terror\taccess\tconnection complete\t.*error="connection failed: ECONNREFUSED"/,
    );
  });

  it('closed without being counted first: counted with what is known at the end', async () => {
    const record = new ConnectionRecord(metrics, { direction: 'outbound', srcAddr: 'a:1', dstAddr: 'b:2' });
    record.info.responseFlags = 'TLS_FAILURE';
    record.close(undefined, 'tls');
    assert.deepEqual(await flagsOf('istio_tcp_connections_opened_total'), ['TLS_FAILURE']);
  });

  it('ends once: a reject is a WARN without metrics, and a later close is ignored', async () => {
    const record = new ConnectionRecord(metrics, { direction: 'inbound', srcAddr: 'a:1', dstAddr: 'b:2' });
    record.reject('attempted recursive call to ourselves');
    record.close({ downstreamToUpstream: 1, upstreamToDownstream: 1 });
    assert.equal(lines.filter((l) => l.includes('connection failed')).length, 1);
    assert.equal(lines.filter((l) => l.includes('connection complete')).length, 0);
    assert.deepEqual(await metric(registry, 'istio_tcp_connections_opened_total'), []);
  });

  it('connections with the same labels add up in one series; a reset counter starts again from zero', async () => {
    closeOne('outbound');
    closeOne('outbound');
    closeOne('inbound');
    const opened = await metric(registry, 'istio_tcp_connections_opened_total');
    assert.deepEqual(
      opened.map((o) => [o.labels.reporter, o.value]),
      [
        ['source', 2],
        ['destination', 1],
      ],
    );
    assert.deepEqual(
      (await metric(registry, 'istio_tcp_received_bytes_total')).map((o) => o.value),
      [22, 11],
    );
    metrics.opened.reset();
    metrics.received.reset();
    closeOne('outbound');
    assert.deepEqual(
      (await metric(registry, 'istio_tcp_connections_opened_total')).map((o) => [o.labels.reporter, o.value]),
      [['source', 1]],
    );
    assert.deepEqual(
      (await metric(registry, 'istio_tcp_received_bytes_total')).map((o) => o.value),
      [11],
    );
    assert.deepEqual(
      (await metric(registry, 'istio_tcp_connections_closed_total')).map((o) => o.value),
      [3, 1],
    );
  });

  it('policy tracking ends with the record', () => {
    const store = new WorkloadStore();
    const tracker = new ConnectionTracker(store);
    const record = new ConnectionRecord(metrics, { direction: 'inbound', srcAddr: 'a:1', dstAddr: 'b:2' });
    record.trackPolicy(tracker, {
      attributes: { srcIp: '10.0.0.1', dstIp: '10.0.0.2', dstPort: 80 },
      policies: () => [],
      close: () => {},
    });
    assert.equal(tracker.size, 1);
    record.close();
    assert.equal(tracker.size, 0);
    tracker.close();
  });

  it('connection opened is DEBUG', () => {
    setLogLevel('debug', 'access');
    try {
      new ConnectionRecord(metrics, { direction: 'inbound', srcAddr: 'a:1', dstAddr: 'b:2' }).opened();
      assert.equal(lines.filter((l) => l.includes('connection opened')).length, 1);
    } finally {
      setLogLevel('info', 'access');
    }
  });
});
