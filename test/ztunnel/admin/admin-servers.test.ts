/** The readiness and metrics servers on loopback with port 0: status codes, bodies, paths and methods. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { HttpServer } from '../../../src/runtime/http-server.js';
import { setLogSink } from '../../../src/runtime/log.js';
import { Counter, Registry } from '../../../src/runtime/metrics.js';
import { serveMetrics } from '../../../src/runtime/metrics-server.js';
import { Readiness, serveReadiness } from '../../../src/ztunnel/admin/readiness.js';

async function get(
  server: HttpServer,
  path: string,
  method = 'GET',
): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${server.address.port}${path}`, { method });
  return { status: res.status, body: await res.text() };
}

describe('admin servers', () => {
  const lines: string[] = [];
  const readiness = new Readiness();
  const registry = new Registry();
  let ready: HttpServer;
  let metrics: HttpServer;

  before(async () => {
    setLogSink({ write: (l: string) => void lines.push(l) });
    new Counter({ name: 'ambit_test_total', help: 'test', registers: [registry] }).inc(3);
    ready = await serveReadiness({ host: '127.0.0.1', port: 0 }, readiness);
    metrics = await serveMetrics({ host: '127.0.0.1', port: 0 }, registry);
  });
  after(async () => {
    await ready.close();
    await metrics.close();
    setLogSink(process.stdout);
  });

  test('readiness: 503 naming the pending tasks (sorted), then 200 once all are released', async () => {
    readiness.register('workload proxy manager');
    readiness.register('state manager');
    assert.deepEqual(await get(ready, '/healthz/ready'), {
      status: 503,
      body: 'not ready, pending: state manager, workload proxy manager\n',
    });
    readiness.release('state manager');
    assert.equal((await get(ready, '/healthz/ready')).status, 503);
    readiness.release('workload proxy manager');
    assert.deepEqual(await get(ready, '/healthz/ready'), { status: 200, body: 'ready\n' });
    assert.ok(
      lines.some(
        (l) => l.includes("Task 'workload proxy manager' complete") && l.includes('marking server ready'),
      ),
    );
    readiness.register('workload proxy manager');
    assert.equal((await get(ready, '/healthz/ready')).status, 503, 're-registered after a disconnect');
    readiness.release('workload proxy manager');
  });

  test('readiness: other paths 404, other methods 405', async () => {
    assert.equal((await get(ready, '/healthz')).status, 404);
    assert.equal((await get(ready, '/healthz/ready', 'POST')).status, 405);
  });

  test('metrics: the registry in text format on /metrics and /stats/prometheus', async () => {
    for (const path of ['/metrics', '/stats/prometheus']) {
      const r = await get(metrics, path);
      assert.equal(r.status, 200);
      assert.match(r.body, /^# TYPE ambit_test_total counter$/m);
      assert.match(r.body, /^ambit_test_total 3$/m);
    }
    assert.equal((await get(metrics, '/stats')).status, 404);
  });

  test('a taken port is an error naming the server and the errno', async () => {
    await assert.rejects(serveMetrics({ host: '127.0.0.1', port: metrics.address.port }, registry), {
      code: 'EADDRINUSE',
      message: /cannot serve metrics on 127\.0\.0\.1:\d+: EADDRINUSE/,
    });
  });
});
