/**
 * /config_dump and /logging through the real admin handler on a loopback HTTP server: the store
 * in camelCase, certificates from a real CertificateManager over a local CA with no key material,
 * workloadState, the config view; log levels set, per target, reset, and bad input refused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { parseLocalConfig } from '../../../src/discovery/local-config.js';
import { WorkloadStore } from '../../../src/discovery/store.js';
import { LocalCa } from '../../../src/identity/local-ca.js';
import { CertificateManager } from '../../../src/identity/manager.js';
import { parseSpiffeId } from '../../../src/identity/spiffe.js';
import type { HttpServer } from '../../../src/runtime/http-server.js';
import { logger, logLevels, setLogLevel } from '../../../src/runtime/log.js';
import { serveAdmin } from '../../../src/ztunnel/admin/admin-server.js';
import type { ConfigDump } from '../../../src/ztunnel/admin/config-dump.js';

const IDENTITY = parseSpiffeId('spiffe://cluster.local/ns/ambient-demo/sa/sleep');

const WORKLOADS = `
workloads:
  - uid: Kubernetes//v1/Pod/ambient-demo/sleep
    name: sleep
    namespace: ambient-demo
    serviceAccount: sleep
    workloadIps: [10.244.1.5]
    protocol: HBONE
    node: n1
    services:
      ambient-demo/httpbin.ambient-demo.svc.cluster.local: { "80": 8000 }
services:
  - name: httpbin
    namespace: ambient-demo
    hostname: httpbin.ambient-demo.svc.cluster.local
    vips: ["/10.96.0.10"]
    ports: { "80": 8000 }
policies:
  - name: allow-sleep
    namespace: ambient-demo
    scope: Namespace
    action: Allow
    rules: []
`;

function http(
  server: HttpServer,
  method: string,
  path: string,
): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: server.address.port, method, path, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.once('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            type: String(res.headers['content-type']),
          }),
        );
      },
    );
    req.once('error', reject);
    req.end();
  });
}

describe('admin server', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-admin-'));
  let server: HttpServer;
  let certificates: CertificateManager;
  let privateKeyPem: string;
  let quits = 0;
  const startLevels = logLevels();

  before(async () => {
    const ca = await LocalCa.open(join(dir, 'ca'), { trustDomain: 'cluster.local' });
    certificates = new CertificateManager({ ca });
    privateKeyPem = (await certificates.fetch(IDENTITY)).privateKeyPem();
    const store = new WorkloadStore({ node: 'n1' });
    store.replaceAll(parseLocalConfig(WORKLOADS));
    server = await serveAdmin(
      { host: '127.0.0.1', port: 0 },
      {
        dump: {
          store,
          certificates,
          workloadState: () => ({
            'uid-up': {
              state: 'Up',
              info: { name: 'sleep', namespace: 'ambient-demo', serviceAccount: 'sleep' },
            },
            'uid-pending': {
              state: 'Pending',
              info: { name: 'httpbin', namespace: 'ambient-demo', serviceAccount: 'httpbin' },
            },
          }),
          config: {
            inpodUds: '/var/run/ztunnel/ztunnel.sock',
            inpodPortReuse: true,
            packetMark: 1337,
            adminAddr: { host: 'localhost', port: 15000 },
            authToken: 'secret-bearer-token-value',
          },
        },
        startupLogLevels: [{ level: 'warn' }, { target: 'ztunnel::inpod', level: 'debug' }],
        quit: () => quits++,
      },
    );
  });

  after(async () => {
    await server.close();
    certificates.close();
    rmSync(dir, { recursive: true, force: true });
  });

  afterEach(() => {
    setLogLevel(startLevels.default ?? 'info');
  });

  test('GET /config_dump: store in camelCase, workloadState, config with proxyMode Shared', async () => {
    const res = await http(server, 'GET', '/config_dump');
    assert.equal(res.status, 200);
    assert.match(res.type, /^application\/json/);
    const dump = JSON.parse(res.body) as ConfigDump;
    assert.equal(dump.workloads.length, 1);
    const w = dump.workloads[0] as Record<string, unknown>;
    assert.equal(w['uid'], 'Kubernetes//v1/Pod/ambient-demo/sleep');
    assert.equal(w['serviceAccount'], 'sleep');
    assert.deepEqual(w['workloadIps'], ['10.244.1.5']);
    assert.deepEqual(w['services'], {
      'ambient-demo/httpbin.ambient-demo.svc.cluster.local': { '80': 8000 },
    });
    assert.deepEqual((dump.services[0] as Record<string, unknown>)['ports'], { '80': 8000 });
    assert.equal((dump.policies[0] as Record<string, unknown>)['name'], 'allow-sleep');
    assert.deepEqual(dump.workloadState['uid-up'], {
      state: 'Up',
      info: { name: 'sleep', namespace: 'ambient-demo', serviceAccount: 'sleep' },
    });
    assert.equal(dump.workloadState['uid-pending']?.state, 'Pending');
    assert.equal(dump.config['proxyMode'], 'Shared');
    assert.equal(dump.config['packetMark'], 1337);
    assert.equal(dump.config['inpodPortReuse'], true);
    assert.equal(dump.config['adminAddr'], 'localhost:15000');
    assert.equal(dump.config['authToken'], '<redacted>');
    assert.ok(!res.body.includes('secret-bearer-token-value'));
  });

  test('certificates: chain and roots as base64 PEM with serial and validity, and no private key material', async () => {
    const res = await http(server, 'GET', '/config_dump');
    const dump = JSON.parse(res.body) as ConfigDump;
    assert.equal(dump.certificates.length, 1);
    const c = dump.certificates[0]!;
    const issued = certificates.current(IDENTITY)!;
    assert.equal(c.identity, IDENTITY);
    assert.equal(c.state, 'Available');
    assert.equal(c.certChain.length, issued.certChainPem.length);
    assert.equal(Buffer.from(c.certChain[0]!.pem, 'base64').toString(), issued.certChainPem[0]);
    assert.equal(c.certChain[0]!.serialNumber, issued.serialNumber);
    assert.equal(c.certChain[0]!.expirationTime, issued.notAfter.toISOString());
    assert.equal(c.certChain[0]!.validFrom, issued.notBefore.toISOString());
    assert.equal(c.rootCerts.length, 1);
    assert.match(Buffer.from(c.rootCerts[0]!.pem, 'base64').toString(), /BEGIN CERTIFICATE/);
    // The key must not appear in any form: PEM text, its base64 body, or the PEM base64-encoded again.
    const keyBody = privateKeyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
    const decodedPems = [...c.certChain, ...c.rootCerts].map((x) => Buffer.from(x.pem, 'base64').toString());
    for (const text of [res.body, ...decodedPems]) {
      assert.ok(!text.includes('PRIVATE KEY'));
      assert.ok(!text.includes(keyBody.slice(0, 40)));
      assert.ok(!text.includes(Buffer.from(privateKeyPem).toString('base64').slice(0, 40)));
    }
  });

  test('POST /logging?level=debug changes the default level; GET /logging shows it', async () => {
    const log = logger('ztunnel::proxy');
    assert.equal(log.enabled('debug'), false);
    const res = await http(server, 'POST', '/logging?level=debug');
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).default, 'debug');
    assert.equal(log.enabled('debug'), true);
    assert.equal(JSON.parse((await http(server, 'GET', '/logging')).body).default, 'debug');
  });

  test('POST /logging?<target>=<level> changes one target only; &reset returns to the start-up levels', async () => {
    const res = await http(server, 'POST', '/logging?ztunnel::proxy=debug');
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body)['ztunnel::proxy'], 'debug');
    assert.equal(logger('ztunnel::proxy::outbound').enabled('debug'), true);
    assert.equal(logger('ztunnel::inpod').enabled('debug'), false);
    const reset = await http(server, 'POST', '/logging?reset');
    assert.deepEqual(JSON.parse(reset.body), { default: 'warn', 'ztunnel::inpod': 'debug' });
    assert.equal(logger('ztunnel::proxy').enabled('debug'), false);
    assert.equal(logger('ztunnel::proxy').enabled('info'), false);
    const both = await http(server, 'POST', '/logging?reset&level=info,ztunnel::hbone=trace');
    assert.deepEqual(JSON.parse(both.body), { default: 'info', 'ztunnel::hbone': 'trace' });
  });

  test('a bad level is refused with 400 and changes nothing', async () => {
    const before = logLevels();
    const res = await http(server, 'POST', '/logging?ztunnel::proxy=debug&level=loud');
    assert.equal(res.status, 400);
    assert.match(res.body, /'loud' is not <level>/);
    assert.deepEqual(logLevels(), before);
  });

  test('methods and paths: GET /quitquitquit 405, POST quits, unknown 404, POST /config_dump 405', async () => {
    assert.equal((await http(server, 'GET', '/quitquitquit')).status, 405);
    assert.equal(quits, 0);
    assert.equal((await http(server, 'POST', '/config_dump')).status, 405);
    assert.equal((await http(server, 'GET', '/nope')).status, 404);
    const q = await http(server, 'POST', '/quitquitquit');
    assert.deepEqual([q.status, q.body, quits], [200, 'OK\n', 1]);
  });

  test('the admin server refuses a non-loopback address', async () => {
    await assert.rejects(
      serveAdmin({ host: '0.0.0.0', port: 0 }, { dump: {} as never, startupLogLevels: [], quit: () => {} }),
      { code: 'ERR_ADMIN_NOT_LOCAL' },
    );
  });
});
