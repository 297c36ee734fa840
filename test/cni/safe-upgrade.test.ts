import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { shutdownIntent } from '../../src/cni/safe-upgrade.js';

/** An API server that answers GET daemonsets with whatever the test queued, and counts the reads. */
class FakeApi {
  server: Server | undefined;
  answers: { status: number; body?: unknown; hang?: boolean }[] = [];
  reads: string[] = [];

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.reads.push(`${req.method} ${req.url}`);
      const a = this.answers.shift() ?? { status: 500 };
      if (a.hang) return; // never answers
      res.writeHead(a.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(a.body ?? { kind: 'Status', code: a.status }));
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    const { port } = this.server!.address() as AddressInfo;
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    return kc;
  }
}

const daemonSet = (deleting: boolean) => ({
  apiVersion: 'apps/v1',
  kind: 'DaemonSet',
  metadata: {
    name: 'ambit-cni-node',
    namespace: 'istio-system',
    ...(deleting ? { deletionTimestamp: '2026-12-03T00:00:00Z' } : {}),
  },
});

describe('shutdownIntent: upgrade or uninstall, from the node agent DaemonSet', () => {
  const api = new FakeApi();
  before(() => api.start());
  after(() => api.server?.closeAllConnections());
  after(() => new Promise<void>((r) => api.server!.close(() => r())));
  const ask = (extra: Partial<Parameters<typeof shutdownIntent>[0]> = {}) =>
    shutdownIntent({ kubeConfig: api.kubeConfig(), namespace: 'istio-system', delayMs: 10, ...extra });

  it('reads the DaemonSet in the pod namespace; present -> upgrade', async () => {
    api.reads = [];
    api.answers = [{ status: 200, body: daemonSet(false) }];
    const intent = await ask();
    assert.equal(intent.kind, 'upgrade');
    assert.deepEqual(api.reads, ['GET /apis/apps/v1/namespaces/istio-system/daemonsets/ambit-cni-node']);
  });

  it('being deleted, not found, 401 or 403 -> uninstall', async () => {
    for (const answer of [
      { status: 200, body: daemonSet(true) },
      { status: 404 },
      { status: 401 },
      { status: 403 },
    ]) {
      api.answers = [answer];
      const intent = await ask();
      assert.equal(intent.kind, 'uninstall', `HTTP ${answer.status}`);
      assert.match(intent.reason, /being deleted|not found|HTTP 40[13]/);
    }
  });

  it('other errors are retried, then count as an upgrade (fail closed)', async () => {
    api.reads = [];
    api.answers = [{ status: 500 }, { status: 503 }, { status: 200, body: daemonSet(true) }];
    assert.equal((await ask()).kind, 'uninstall', 'the third read decides');
    assert.equal(api.reads.length, 3);
    api.reads = [];
    api.answers = [{ status: 500 }, { status: 500 }, { status: 500 }];
    const intent = await ask();
    assert.equal(intent.kind, 'upgrade');
    assert.match(intent.reason, /HTTP 500.*fail closed/);
    assert.equal(api.reads.length, 3);
  });

  it('an API server that never answers does not hang the shutdown', async () => {
    api.answers = [
      { status: 0, hang: true },
      { status: 0, hang: true },
    ];
    const intent = await ask({ attempts: 2, timeoutMs: 200 });
    assert.equal(intent.kind, 'upgrade');
    assert.match(intent.reason, /no answer in 200 ms/);
  });

  it('AMBIENT_DISABLE_SAFE_UPGRADE: uninstall without asking', async () => {
    api.reads = [];
    api.answers = [{ status: 200, body: daemonSet(false) }];
    assert.equal((await ask({ disableSafeUpgrade: true })).kind, 'uninstall');
    assert.deepEqual(api.reads, []);
    api.answers = [];
  });
});
