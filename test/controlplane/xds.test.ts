/**
 * Delta ADS against the lab API server: the XdsClient fills a WorkloadStore from pods, services and the
 * policy file; raw grpc-js streams check NACK handling and reconnects with initial_resource_versions.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  Client,
  type ClientDuplexStream,
  credentials,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { WorkloadStore } from '../../src/discovery/store.js';
import { XdsClient } from '../../src/discovery/xds-client.js';
import { setLogSink } from '../../src/runtime/log.js';
import {
  ADDRESS_TYPE_URL,
  AUTHORIZATION_TYPE_URL,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
} from '../../src/xds/messages.js';
import { AGGREGATED_DISCOVERY_SERVICE } from '../../src/xds/services.js';
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
  /** istio-system/ztunnel's token for audience istio-ca, as the lab gives each node's ztunnel. */
  let token = '';

  before(async () => {
    policyDir = mkdtempSync(join(tmpdir(), 'ambit-cp-pol-'));
    const policiesFile = join(policyDir, 'policies.yaml');
    writeFileSync(policiesFile, POLICIES);
    setLogSink({ write: (line: string) => void logLines.push(line) });
    h = await Harness.start({ policiesFile });
    h.serviceAccount('istio-system', 'ztunnel');
    token = await h.token('istio-system', 'ztunnel');
    raw = new Client(h.cp.address, credentials.createSsl(Buffer.from(h.cp.rootPem)));
  });
  after(async () => {
    setLogSink(process.stdout);
    raw.close();
    await h.stop();
    rmSync(policyDir, { recursive: true, force: true });
  });

  /** A raw stream whose metadata the test controls: `authorization: Bearer <bearer>` unless null. */
  function open(bearer: string | null = token): {
    stream: Stream;
    responses: DeltaDiscoveryResponse[];
    /** Set once the stream ended: its error status, or null after a clean end. */
    outcome: { error: ServiceError | null } | undefined;
  } {
    const m = AGGREGATED_DISCOVERY_SERVICE.DeltaAggregatedResources;
    const md = new Metadata();
    if (bearer !== null) md.set('authorization', `Bearer ${bearer}`);
    const stream: Stream = raw.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, md);
    const responses: DeltaDiscoveryResponse[] = [];
    stream.on('data', (r: DeltaDiscoveryResponse) => responses.push(r));
    const opened: ReturnType<typeof open> = { stream, responses, outcome: undefined };
    stream.on('error', (error: ServiceError) => {
      opened.outcome ??= { error };
    });
    stream.on('end', () => {
      opened.outcome ??= { error: null };
    });
    return opened;
  }

  it('the xds client fills a WorkloadStore: an enrolled pod appears as HBONE, deletion removes it', async () => {
    const store = new WorkloadStore();
    const tokenFile = join(policyDir, 'istio-token');
    writeFileSync(tokenFile, token, { mode: 0o600 });
    const client = new XdsClient({
      address: h.address,
      rootPem: h.cp.rootPem,
      // A path: re-read per stream, as ztunnel reads its projected token.
      token: tokenFile,
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
        30_000,
        'pod workload',
      );
      assert.equal(plain.protocol, 'TCP');
      h.annotatePod('shop', 'cart-1', { 'ambient.istio.io/redirection': 'enabled' });
      const w = await eventually(
        () => {
          const x = store.workloadByUid('Kubernetes//v1/Pod/shop/cart-1');
          return x?.protocol === 'HBONE' && x;
        },
        30_000,
        'HBONE workload',
      );
      assert.deepEqual(w.workloadIps, ['10.9.1.2']);
      assert.equal(w.node, 'node-a');
      assert.equal(w.serviceAccount, 'cart');
      assert.deepEqual([...(w.services.get('shop/cart.shop.svc.cluster.local') ?? [])], [[80, 8080]]);
      assert.equal(store.workloadByIp('10.9.1.2')?.uid, w.uid);
      assert.equal(store.endpoints(svc).length, 1);

      h.deletePod('shop', 'cart-1');
      await eventually(() => !store.workloadByUid(w.uid), 30_000, 'workload removal');
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
      const first = await eventually(() => responses[0], 30_000, 'first response');
      const names = first.resources.map((r) => r.name);
      assert.ok(names.includes('Kubernetes//v1/Pod/shop/nack-1'));
      const nacksBefore = h.cp.xds.stats.nacks;
      stream.write(
        request(ADDRESS_TYPE_URL, {
          responseNonce: first.nonce,
          errorDetail: { code: 3, message: 'test rejects this', details: [] },
        }),
      );
      await eventually(() => h.cp.xds.stats.nacks > nacksBefore, 30_000, 'NACK counted');
      assert.ok(logLines.some((l) => l.includes('NACK') && l.includes('test rejects this')));
      h.pod({ namespace: 'shop', name: 'nack-2', ip: '10.9.2.2' });
      const second = await eventually(() => responses[1], 30_000, 'response after the change');
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
      30_000,
      'addresses',
    );
    const policies = await eventually(
      () => a.responses.find((r) => r.typeUrl === AUTHORIZATION_TYPE_URL),
      30_000,
      'policies',
    );
    a.stream.cancel();
    const known = Object.fromEntries(addresses.resources.map((r) => [r.name, r.version]));
    assert.ok(known['Kubernetes//v1/Pod/shop/gone-1']);

    h.deletePod('shop', 'gone-1');
    h.pod({ namespace: 'shop', name: 'new-1', ip: '10.9.3.3' });
    await eventually(
      () => h.cp.cache.resources(ADDRESS_TYPE_URL).has('Kubernetes//v1/Pod/shop/new-1'),
      30_000,
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
        30_000,
        'diff',
      );
      assert.deepEqual(
        diff.resources.map((r) => r.name),
        ['Kubernetes//v1/Pod/shop/new-1'],
      );
      assert.deepEqual(diff.removedResources, ['Kubernetes//v1/Pod/shop/gone-1']);
      const authz = await eventually(
        () => b.responses.find((r) => r.typeUrl === AUTHORIZATION_TYPE_URL),
        30_000,
        'authz',
      );
      assert.equal(authz.resources.length, 0, 'unchanged policies are not re-sent');
      assert.deepEqual(authz.removedResources, []);
    } finally {
      b.stream.cancel();
    }
  });
  it('refuses a stream without a token, with a forged one or one for another audience: UNAUTHENTICATED, no resources', async () => {
    h.pod({ namespace: 'shop', name: 'secret-1', ip: '10.9.4.1' });
    await eventually(
      () => h.cp.cache.resources(ADDRESS_TYPE_URL).has('Kubernetes//v1/Pod/shop/secret-1'),
      30_000,
      'cache',
    );
    // Forged: a real token's claims rewritten to another service account, the signature kept.
    const [header, payload, signature] = (await h.token('shop', 'cart')).split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8')) as Record<string, unknown>;
    claims['sub'] = 'system:serviceaccount:istio-system:ztunnel';
    const forged = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
    const otherAudience = await h.token('istio-system', 'ztunnel', { audiences: ['someone-else'] });
    for (const [what, bearer, reason] of [
      ['no token', null, /Bearer/],
      ['a forged token', forged, /token/],
      ['a token for another audience', otherAudience, /audience/],
      ['not a token at all', 'not-a-token', /token/],
    ] as const) {
      const s = open(bearer);
      s.stream.write(request(ADDRESS_TYPE_URL));
      s.stream.write(request(AUTHORIZATION_TYPE_URL));
      // Either outcome ends the wait: a refusal, or resources handed to an unauthenticated caller.
      await eventually(() => s.outcome || s.responses.length > 0, 30_000, `${what}: refusal or response`);
      const resources = s.responses.reduce((n, r) => n + r.resources.length, 0);
      assert.deepEqual(
        s.responses,
        [],
        `${what}: ${s.responses.length} responses with ${resources} resources`,
      );
      s.stream.cancel();
      const err = s.outcome?.error;
      assert.ok(err, `${what}: the stream ended without an error status`);
      assert.equal(err.code, status.UNAUTHENTICATED, `${what}: status ${status[err.code]}: ${err.details}`);
      assert.match(err.details, reason, what);
    }
    // The refusals left nothing behind: every counted stream is gone again.
    await eventually(() => h.cp.xds.stats.streams === 0, 30_000, 'no stream left open');
  });

  it('the xds client without a token is refused and never becomes ready', async () => {
    const store = new WorkloadStore();
    const client = new XdsClient({
      address: h.address,
      rootPem: h.cp.rootPem,
      store,
      node: { id: 'ztunnel~10.9.0.9~intruder.default~default.svc.cluster.local' },
      initialBackoffMs: 50,
    });
    const refusals: string[] = [];
    client.on('disconnected', (e) => refusals.push(e));
    try {
      client.start();
      await eventually(() => refusals.length >= 2, 30_000, 'two refused attempts');
      assert.match(refusals[0]!, /UNAUTHENTICATED/);
      assert.equal(client.isReady, false);
      assert.equal(store.workloadByUid('Kubernetes//v1/Pod/shop/secret-1'), undefined);
    } finally {
      client.close();
    }
  });

  it('the xds client reconnects on its own schedule once the control plane is back (no grpc reconnect back-off in the way)', async () => {
    const { startControlPlane } = await import('../../src/controlplane/index.js');
    const start = (listen: string) =>
      startControlPlane({ kubeconfig: join(h.dir, 'kubeconfig'), caDir: join(h.dir, 'ca'), listen });
    let cp = await start('127.0.0.1:0');
    const tokenFile = join(policyDir, 'istio-token-2');
    writeFileSync(tokenFile, token, { mode: 0o600 });
    const client = new XdsClient({
      address: `https://${cp.address}`,
      rootPem: cp.rootPem,
      token: tokenFile,
      store: new WorkloadStore(),
      node: { id: 'ztunnel~10.9.0.2~ztunnel-a.istio-system~istio-system.svc.cluster.local' },
      // Retries every 20..200 ms: the client's own schedule, which grpc's must not override.
      initialBackoffMs: 20,
      maxBackoffMs: 200,
    });
    const lost: string[] = [];
    let acks = 0;
    client.on('disconnected', (e) => lost.push(e));
    client.on('ack', () => acks++);
    try {
      client.start();
      await client.ready;
      await cp.close();
      // An outage long enough for several failed reconnects (grpc's back-off grows with each).
      await eventually(() => lost.length >= 5, 30_000, 'failed reconnects while the control plane is down');
      cp = await start(cp.address);
      const lostBefore = lost.length;
      const acksBefore = acks;
      await eventually(() => acks > acksBefore, 30_000, 'the state re-sent after the reconnect');
      // At most the attempt already under way when the control plane came back can still fail.
      const failedAfter = lost.slice(lostBefore);
      assert.ok(
        failedAfter.length <= 1,
        `${failedAfter.length} failed reconnects after the restart: ${failedAfter.join('; ')}`,
      );
    } finally {
      client.close();
      await cp.close();
    }
  });
});
