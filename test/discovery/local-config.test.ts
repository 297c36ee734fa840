import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseLocalConfig } from '../../src/discovery/local-config.js';
import { LocalFileSource } from '../../src/discovery/local-file-source.js';
import { WorkloadStore } from '../../src/discovery/store.js';
import type { AmbitError } from '../../src/errors.js';

// The intent of ztunnel's examples/localhost.yaml, written for this test.
const EXAMPLE = `
workloads:
  - uid: cluster1//v1/Pod/default/local
    name: local
    namespace: default
    serviceAccount: local
    workloadIps: ["127.0.0.1"]
    protocol: HBONE
    node: local
    services:
      "default/example.com":
        80: 8080
  - name: local-tcp
    namespace: default
    serviceAccount: local
    workloadIps: ["127.0.0.2"]
    protocol: TCP
    node: other
    services:
      "default/example.com":
        80: 8080
services:
  - name: example
    namespace: default
    hostname: example.com
    vips: ["/127.10.0.1"]
    ports:
      80: 8080
    subjectAltNames: ["spiffe://cluster.local/ns/default/sa/local"]
policies:
  - name: deny-9999
    namespace: default
    scope: Namespace
    action: Allow
    rules:
      - - - notDestinationPorts: [9999]
`;

test('the example parses into workloads, services and policies', () => {
  const s = parseLocalConfig(EXAMPLE);
  assert.equal(s.workloads.length, 2);
  const w = s.workloads[0]!;
  assert.equal(w.uid, 'cluster1//v1/Pod/default/local');
  assert.equal(w.protocol, 'HBONE');
  assert.equal(w.trustDomain, 'cluster.local');
  assert.deepEqual([...w.services.get('default/example.com')!], [[80, 8080]]);
  assert.equal(
    s.workloads[1]!.uid,
    'local//v1/Pod/default/local-tcp',
    'a missing uid is derived from namespace/name',
  );
  assert.deepEqual(s.services[0]!.vips, [{ network: '', address: '127.10.0.1' }]);
  assert.deepEqual(s.policies[0]!.rules[0]![0]![0]!.notDestinationPorts, [9999]);
  assert.equal(s.policies[0]!.scope, 'Namespace');
});

test('lookups by IP, by VIP, endpoints and the local pod by (name, namespace, sa) on this node', () => {
  const store = new WorkloadStore({ node: 'local' });
  store.replaceAll(parseLocalConfig(EXAMPLE));
  assert.equal(store.workloadByIp('127.0.0.1')?.name, 'local');
  assert.equal(
    store.workloadByIp('::ffff:127.0.0.2')?.name,
    'local-tcp',
    'v4-mapped addresses are canonicalised',
  );
  assert.equal(store.workloadByIp('127.0.0.9'), undefined);
  const svc = store.serviceByVip('127.10.0.1');
  assert.equal(svc?.hostname, 'example.com');
  assert.deepEqual(
    store
      .endpoints(svc!)
      .map((e) => e.workload.name)
      .sort(),
    ['local', 'local-tcp'],
  );
  assert.equal(
    store.findLocalWorkload({ name: 'local', namespace: 'default', serviceAccount: 'local' })?.uid,
    'cluster1//v1/Pod/default/local',
  );
  assert.equal(
    store.findLocalWorkload({ name: 'local-tcp', namespace: 'default', serviceAccount: 'local' }),
    undefined,
    'other node',
  );
  assert.equal(
    store.findLocalWorkload({ name: 'local', namespace: 'default', serviceAccount: 'other' }),
    undefined,
    'sa must match',
  );
  assert.deepEqual(
    store.policiesFor(store.workloadByIp('127.0.0.1')!).map((p) => p.name),
    ['deny-9999'],
  );
});

for (const [name, yaml, path] of [
  ['unknown top-level key', 'workload: []', 'workload'],
  [
    'misspelt workload key',
    'workloads:\n  - name: a\n    namespace: b\n    protocl: HBONE',
    'workloads[0].protocl',
  ],
  [
    'bad IP',
    'workloads:\n  - name: a\n    namespace: b\n    workloadIps: ["10.0.0.300"]',
    'workloads[0].workloadIps[0]',
  ],
  ['bad protocol', 'workloads:\n  - name: a\n    namespace: b\n    protocol: UDP', 'workloads[0].protocol'],
  [
    'bad port',
    'services:\n  - name: s\n    namespace: n\n    hostname: h\n    ports: {80: 99999}',
    'services[0].ports.80',
  ],
  [
    'unknown match key',
    'policies:\n  - name: p\n    rules: [[[{destinationPort: [1]}]]]',
    'policies[0].rules[0][0][0].destinationPort',
  ],
  ['missing name', 'workloads:\n  - namespace: b', 'workloads[0].name'],
  [
    'duplicate uid',
    'workloads:\n  - {uid: x, name: a, namespace: b}\n  - {uid: x, name: c, namespace: b}',
    'workloads[1].uid',
  ],
] as const) {
  test(`rejected with the offending path: ${name}`, () => {
    assert.throws(
      () => parseLocalConfig(yaml, 'f.yaml'),
      (err: AmbitError) => err.code === 'ERR_LOCAL_XDS' && err.message.startsWith(`f.yaml: ${path}:`),
    );
  });
}

test('invalid YAML is an error, not a crash', () => {
  assert.throws(
    () => parseLocalConfig('workloads: [\n', 'f.yaml'),
    (err: AmbitError) => err.code === 'ERR_LOCAL_XDS',
  );
});

test('a malformed file on reload is rejected and the previous state is kept; a good one replaces it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-t-'));
  const file = join(dir, 'workloads.yaml');
  const store = new WorkloadStore();
  const source = new LocalFileSource(file, store);
  try {
    writeFileSync(file, EXAMPLE);
    source.load();
    source.watch(10);
    const changed = () => new Promise<void>((resolve) => store.once('change', () => resolve()));
    const waitFor = async (pred: () => boolean) => {
      for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
    };

    writeFileSync(file, 'workloads:\n  - name: a\n    namespace: b\n    colour: red\n');
    await waitFor(() => source.lastError !== undefined);
    assert.match(source.lastError?.message ?? '', /workloads\[0\]\.colour/);
    assert.equal(store.workloads.length, 2, 'previous state kept');

    const next = changed();
    writeFileSync(file, 'workloads:\n  - name: only\n    namespace: b\n    workloadIps: ["10.1.1.1"]\n');
    await next;
    assert.deepEqual(
      store.workloads.map((w) => w.name),
      ['only'],
    );
    assert.equal(source.lastError, undefined);
  } finally {
    source.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
