/**
 * The Prometheus text a registry renders (exposition format 0.0.4): HELP/TYPE per metric, labelled and
 * unlabelled samples, escaping, collect hooks run at scrape time, and the errors a wrong use gets.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Counter, Gauge, Histogram, Registry, registerProcessMetrics } from '../../src/runtime/metrics.js';

describe('metrics registry', () => {
  test('counters and gauges render as the Prometheus text format', async () => {
    const registry = new Registry();
    const c = new Counter({
      name: 'istio_tcp_connections_opened_total',
      help: 'Opened',
      labelNames: ['a', 'b'],
      registers: [registry],
    });
    const g = new Gauge({ name: 'ztunnel_connected', help: 'Connected', registers: [registry] });
    c.inc({ a: 'x', b: 1 });
    c.inc({ a: 'x', b: 1 }, 2);
    c.inc({ a: 'y' });
    g.set(3);
    g.dec();
    assert.equal(
      await registry.metrics(),
      [
        '# HELP istio_tcp_connections_opened_total Opened',
        '# TYPE istio_tcp_connections_opened_total counter',
        'istio_tcp_connections_opened_total{a="x",b="1"} 3',
        'istio_tcp_connections_opened_total{a="y"} 1',
        '# HELP ztunnel_connected Connected',
        '# TYPE ztunnel_connected gauge',
        'ztunnel_connected 2',
        '',
      ].join('\n'),
    );
    assert.equal(registry.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  });

  test('an unlabelled counter shows 0 before its first increase; a labelled one shows no sample', async () => {
    const registry = new Registry();
    new Counter({ name: 'a_total', help: 'a', registers: [registry] });
    new Counter({ name: 'b_total', help: 'b', labelNames: ['x'], registers: [registry] });
    assert.equal(
      await registry.metrics(),
      '# HELP a_total a\n# TYPE a_total counter\na_total 0\n# HELP b_total b\n# TYPE b_total counter\n',
    );
  });

  test('label values and help are escaped', async () => {
    const registry = new Registry();
    const c = new Counter({
      name: 'e_total',
      help: 'back\\slash\nline',
      labelNames: ['v'],
      registers: [registry],
    });
    c.inc({ v: 'say "hi"\\\n' });
    assert.equal(
      await registry.metrics(),
      '# HELP e_total back\\\\slash\\nline\n# TYPE e_total counter\ne_total{v="say \\"hi\\"\\\\\\n"} 1\n',
    );
  });

  test('collect hooks set values at scrape time; get() and getSingleMetric read them', async () => {
    const registry = new Registry();
    let n = 1;
    new Gauge({
      name: 'g',
      help: 'g',
      registers: [registry],
      collect() {
        this.set(n);
      },
    });
    n = 7;
    const snapshot = await registry.getSingleMetric('g')!.get();
    assert.deepEqual(snapshot.values, [{ labels: {}, value: 7 }]);
    assert.equal(registry.getSingleMetric('missing'), undefined);
  });

  test('a series taken with labels() is the one inc(labels) counts; it shows from its first increase', async () => {
    const registry = new Registry();
    const c = new Counter({ name: 's_total', help: 's', labelNames: ['a'], registers: [registry] });
    const series = c.labels({ a: 'x' });
    assert.equal(await registry.metrics(), '# HELP s_total s\n# TYPE s_total counter\n');
    series.inc();
    c.inc({ a: 'x' }, 2);
    series.inc(4);
    assert.deepEqual((await c.get()).values, [{ labels: { a: 'x' }, value: 7 }]);
    assert.throws(() => series.inc(-1), /cannot increase by -1/);
    assert.throws(() => c.labels({ b: 'no' } as never).inc(), /label 'b' was not declared/);
  });

  test('a histogram renders cumulative buckets with le, +Inf, _sum and _count per series', async () => {
    const registry = new Registry();
    const h = new Histogram({
      name: 'upstream_seconds',
      help: 'How long',
      labelNames: ['kind'],
      buckets: [0.01, 0.1, 1],
      registers: [registry],
    });
    h.observe({ kind: 'a' }, 0.005);
    h.observe({ kind: 'a' }, 0.01); // on a bound: counted in that bucket (le is "less than or equal")
    h.observe({ kind: 'a' }, 0.5);
    h.observe({ kind: 'a' }, 7);
    h.observe({ kind: 'b' }, 0.05);
    assert.equal(
      await registry.metrics(),
      [
        '# HELP upstream_seconds How long',
        '# TYPE upstream_seconds histogram',
        'upstream_seconds_bucket{kind="a",le="0.01"} 2',
        'upstream_seconds_bucket{kind="a",le="0.1"} 2',
        'upstream_seconds_bucket{kind="a",le="1"} 3',
        'upstream_seconds_bucket{kind="a",le="+Inf"} 4',
        'upstream_seconds_sum{kind="a"} 7.515',
        'upstream_seconds_count{kind="a"} 4',
        'upstream_seconds_bucket{kind="b",le="0.01"} 0',
        'upstream_seconds_bucket{kind="b",le="0.1"} 1',
        'upstream_seconds_bucket{kind="b",le="1"} 1',
        'upstream_seconds_bucket{kind="b",le="+Inf"} 1',
        'upstream_seconds_sum{kind="b"} 0.05',
        'upstream_seconds_count{kind="b"} 1',
        '',
      ].join('\n'),
    );
    assert.throws(() => h.observe({ other: 'x' } as never, 1), /label 'other' was not declared/);
    assert.throws(
      () => new Histogram({ name: 'bad_seconds', help: 'h', buckets: [1, 0.5] }),
      /buckets must be finite and ascending/,
    );
    assert.throws(
      () => new Histogram({ name: 'bad2_seconds', help: 'h', labelNames: ['le'] }),
      /invalid label name 'le'/,
    );
  });

  test('wrong uses are refused with a clear error', () => {
    const registry = new Registry();
    const c = new Counter({ name: 'x_total', help: 'x', labelNames: ['a'], registers: [registry] });
    assert.throws(() => c.inc({ b: 'no' } as never), /label 'b' was not declared/);
    assert.throws(() => c.inc(-1), /cannot increase by -1/);
    assert.throws(
      () => new Counter({ name: 'x_total', help: 'again', registers: [registry] }),
      /already registered/,
    );
    assert.throws(() => new Counter({ name: 'bad-name', help: 'x' }), /invalid metric name/);
    assert.throws(
      () => new Counter({ name: 'ok', help: 'x', labelNames: ['__reserved'] }),
      /invalid label name/,
    );
  });

  test('process metrics carry this process its CPU, memory and file descriptors', async () => {
    const registry = new Registry();
    registerProcessMetrics(registry);
    const text = await registry.metrics();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    assert.ok(value('process_cpu_seconds_total') > 0);
    assert.ok(value('process_resident_memory_bytes') > 10 * 1024 * 1024);
    assert.ok(value('process_virtual_memory_bytes') >= value('process_resident_memory_bytes'));
    assert.ok(value('process_open_fds') >= 3);
    assert.ok(value('process_max_fds') >= value('process_open_fds'));
    const start = value('process_start_time_seconds');
    assert.ok(Math.abs(start - (Date.now() / 1000 - process.uptime())) < 2);
  });
});
