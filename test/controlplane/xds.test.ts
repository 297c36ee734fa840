/**
 * Delta ADS against the lab API server: the XdsClient fills a WorkloadStore from pods, services and the
 * policy file; raw grpc-js streams check NACK handling and reconnects with initial_resource_versions.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, type ClientDuplexStream, credentials } from '@grpc/grpc-js';
import { setLogSink } from '../../src/admin/log.js';
import {
  ADDRESS_TYPE_URL,
  AUTHORIZATION_TYPE_URL,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
} from '../../src/controlplane/wire/messages.js';
import { AGGREGATED_DISCOVERY_SERVICE } from '../../src/controlplane/wire/services.js';
import { WorkloadStore } from '../../src/discovery/store.js';
import { XdsClient } from '../../src/discovery/xds-client.js';
import { eventually, Harness } from './helpers.js';

const POLICIES = `policies:
  - name: allow-shop
    namespace: shop
    scope: Namespace
    action: Allow
    rules: [[[{ notDestinationPorts: [9999] }]]]
`;

type Stream = ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

function request(typeUrl: string, extra: Partial<DeltaDiscoveryRequest> = {}): DeltaDiscoveryRequest {
  return {
    typeUrl,
    resourceNamesSubscribe: [],
    resourceNamesUnsubscribe: [],
    initialResourceVersions: {},
    responseNonce: '',
    ...extra,
  };
}

describe('control plane delta xDS', () => {
  let h: Harness;
  let raw: Client;
  const logLines: string[] = [];
  let policyDir = '';

  before(async () => {
    policyDir = mkdtempSync(join(tmpdir(), 'ambit-cp-pol-'));
    const policiesFile = join(policyDir, 'policies.yaml');
    writeFileSync(policiesFile, POLICIES);
    setLogSink({ write: (line: string) => void logLines.push(line) });
    h = await Harness.start({ policiesFile });
    raw = new Client(h.cp.address, credentials.createSsl(Buffer.from(h.cp.rootPem)));
  });
  after(async () => {
    setLogSink(process.stdout);
    raw.close();
    await h.stop();
    rmSync(policyDir, { recursive: true, force: true });
  });

  function open(): { stream: Stream; responses: DeltaDiscoveryResponse[] } {
    const m = AGGREGATED_DISCOVERY_SERVICE.DeltaAggregatedResources;
    const stream: Stream = raw.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize);
    const responses: DeltaDiscoveryResponse[] = [];
    stream.on('data', (r: DeltaDiscoveryResponse) => responses.push(r));
    stream.on('error', () => undefined);
    return { stream, responses };
  }

  it('the xds client fills a WorkloadStore: an enrolled pod appears as HBONE within 1 s, deletion removes it', async () => {
    const store = new WorkloadStore();
    const client = new XdsClient({
      address: h.address,
      rootPem: h.cp.rootPem,
      store,
      node: {
        id: 'ztunnel~10.9.0.2~ztunnel-a.istio-system~istio-system.svc.cluster.local',
        metadata: { NODE_NAME: 'node-a' },
      },
    });
    try {
      h.service('shop', 'cart', { app: 'cart' }, 80, 'http');
      client.start();
      await client.ready;
      const policy = store.policies.find((p) => p.name === 'allow-shop');
      assert.equal(policy?.scope, 'Namespace');
      assert.deepEqual(policy?.rules[0]?.[0]?.[0]?.notDestinationPorts, [9999]);
      const svc = store.service('shop', 'cart.shop.svc.cluster.local');
      assert.ok(svc, 'service present');
      assert.equal(svc.vips.length, 1);
      assert.deepEqual([...svc.ports], [[80, 0]]);

      h.pod({
        namespace: 'shop',
        name: 'cart-1',
        ip: '10.9.1.2',
        labels: { app: 'cart' },
        serviceAccount: 'cart',
      });
      const plain = await eventually(
        () => store.workloadByUid('Kubernetes//v1/Pod/shop/cart-1'),
        1000,
        'pod workload',
      );
      assert.equal(plain.protocol, 'TCP');
      h.annotatePod('shop', 'cart-1', { 'ambient.istio.io/redirection': 'enabled' });
      const w = await eventually(
        () => {
          const x = store.workloadByUid('Kubernetes//v1/Pod/shop/cart-1');
          return x?.protocol === 'HBONE' && x;
        },
        1000,
        'HBONE workload',
      );
      assert.deepEqual(w.workloadIps, ['10.9.1.2']);
      assert.equal(w.node, 'node-a');
      assert.equal(w.serviceAccount, 'cart');
      assert.deepEqual([...(w.services.get('shop/cart.shop.svc.cluster.local') ?? [])], [[80, 8080]]);
      assert.equal(store.workloadByIp('10.9.1.2')?.uid, w.uid);
      assert.equal(store.endpoints(svc).length, 1);

      h.deletePod('shop', 'cart-1');
      await eventually(() => !store.workloadByUid(w.uid), 1000, 'workload removal');
      assert.equal(store.workloadByIp('10.9.1.2'), undefined);
    } finally {
      client.close();
    }
  });

  it('a NACKed response is logged and its resources are re-sent after the next change', async () => {
    h.pod({ namespace: 'shop', name: 'nack-1', ip: '10.9.2.1' });
    const { stream, responses } = open();
    try {
      stream.write(request(ADDRESS_TYPE_URL));
      const first = await eventually(() => responses[0], 2000, 'first response');
      const names = first.resources.map((r) => r.name);
      assert.ok(names.includes('Kubernetes//v1/Pod/shop/nack-1'));
      const nacksBefore = h.cp.xds.stats.nacks;
      stream.write(
        request(ADDRESS_TYPE_URL, {
          responseNonce: first.nonce,
          errorDetail: { code: 3, message: 'test rejects this', details: [] },
        }),
      );
      await eventually(() => h.cp.xds.stats.nacks > nacksBefore, 2000, 'NACK counted');
      assert.ok(logLines.some((l) => l.includes('NACK') && l.includes('test rejects this')));
      h.pod({ namespace: 'shop', name: 'nack-2', ip: '10.9.2.2' });
      const second = await eventually(() => responses[1], 2000, 'response after the change');
      const resent = second.resources.map((r) => r.name);
      assert.ok(resent.includes('Kubernetes//v1/Pod/shop/nack-2'));
      for (const name of names) assert.ok(resent.includes(name), `${name} re-sent`);
    } finally {
      stream.cancel();
    }
  });

  it('a reconnect with known versions receives only the difference', async () => {
    h.pod({ namespace: 'shop', name: 'keep-1', ip: '10.9.3.1' });
    h.pod({ namespace: 'shop', name: 'gone-1', ip: '10.9.3.2' });
    const a = open();
    a.stream.write(request(ADDRESS_TYPE_URL));
    a.stream.write(request(AUTHORIZATION_TYPE_URL));
    const addresses = await eventually(
      () => a.responses.find((r) => r.typeUrl === ADDRESS_TYPE_URL),
      2000,
      'addresses',
    );
    const policies = await eventually(
      () => a.responses.find((r) => r.typeUrl === AUTHORIZATION_TYPE_URL),
      2000,
      'policies',
    );
    a.stream.cancel();
    const known = Object.fromEntries(addresses.resources.map((r) => [r.name, r.version]));
    assert.ok(known['Kubernetes//v1/Pod/shop/gone-1']);

    h.deletePod('shop', 'gone-1');
    h.pod({ namespace: 'shop', name: 'new-1', ip: '10.9.3.3' });
    await eventually(
      () => h.cp.cache.resources(ADDRESS_TYPE_URL).has('Kubernetes//v1/Pod/shop/new-1'),
      2000,
      'cache',
    );

    const b = open();
    try {
      b.stream.write(request(ADDRESS_TYPE_URL, { initialResourceVersions: known }));
      b.stream.write(
        request(AUTHORIZATION_TYPE_URL, {
          initialResourceVersions: Object.fromEntries(policies.resources.map((r) => [r.name, r.version])),
        }),
      );
      const diff = await eventually(
        () => b.responses.find((r) => r.typeUrl === ADDRESS_TYPE_URL),
        2000,
        'diff',
      );
      assert.deepEqual(
        diff.resources.map((r) => r.name),
        ['Kubernetes//v1/Pod/shop/new-1'],
      );
      assert.deepEqual(diff.removedResources, ['Kubernetes//v1/Pod/shop/gone-1']);
      const authz = await eventually(
        () => b.responses.find((r) => r.typeUrl === AUTHORIZATION_TYPE_URL),
        2000,
        'authz',
      );
      assert.equal(authz.resources.length, 0, 'unchanged policies are not re-sent');
      assert.deepEqual(authz.removedResources, []);
    } finally {
      b.stream.cancel();
    }
  });
});
