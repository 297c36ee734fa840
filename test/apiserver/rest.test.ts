import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { LabApi, pod } from './helpers.js';

const PODS = '/api/v1/namespaces/demo/pods';
const MERGE = { 'Content-Type': 'application/merge-patch+json' };

describe('lab API server: REST', () => {
  let api: LabApi;
  before(async () => {
    api = await LabApi.start({ historySize: 20, bookmarkIntervalMs: 100 });
    assert.equal((await api.call('POST', '/api/v1/namespaces', { metadata: { name: 'demo' } })).status, 201);
  });
  after(() => api.stop());

  test('discovery documents describe the served resources', async () => {
    const core = await api.call('GET', '/api/v1');
    assert.equal(core.body.kind, 'APIResourceList');
    const names = core.body.resources.map((r: { name: string }) => r.name);
    for (const n of [
      'namespaces',
      'pods',
      'pods/status',
      'services',
      'endpoints',
      'nodes',
      'serviceaccounts/token',
    ])
      assert.ok(names.includes(n), n);
    assert.deepEqual(core.body.resources.find((r: { name: string }) => r.name === 'pods').shortNames, ['po']);
    assert.deepEqual((await api.call('GET', '/api')).body.versions, ['v1']);
    const groups = (await api.call('GET', '/apis')).body.groups.map((g: { name: string }) => g.name);
    assert.deepEqual(groups, [
      'discovery.k8s.io',
      'authentication.k8s.io',
      'authorization.k8s.io',
      'apiextensions.k8s.io',
    ]);
    assert.equal(
      (await api.call('GET', '/apis/discovery.k8s.io')).body.preferredVersion.groupVersion,
      'discovery.k8s.io/v1',
    );
    const slices = await api.call('GET', '/apis/discovery.k8s.io/v1');
    assert.equal(slices.body.resources[0].kind, 'EndpointSlice');
    const version = await api.call('GET', '/version', undefined, {}, null);
    assert.equal(version.status, 200, 'version needs no token');
    assert.equal(version.body.major, '1');
    assert.equal((await api.call('GET', '/openapi/v2')).status, 404);
    assert.equal((await api.call('GET', '/apis/apps/v1')).body.reason, 'NotFound');
  });

  test('no token or a wrong token is 401 Unauthorized', async () => {
    assert.equal((await api.call('GET', PODS, undefined, {}, null)).status, 401);
    const wrong = await api.call('GET', PODS, undefined, {}, 'nope');
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.reason, 'Unauthorized');
  });

  test('create fills uid, resourceVersion, creationTimestamp, generateName and defaults', async () => {
    const res = await api.call('POST', PODS, { ...pod(''), metadata: { generateName: 'web-' } });
    assert.equal(res.status, 201);
    const m = res.body.metadata;
    assert.match(m.name, /^web-[a-z0-9]{5}$/);
    assert.match(m.uid, /^[0-9a-f-]{36}$/);
    assert.match(m.resourceVersion, /^\d+$/);
    assert.ok(!Number.isNaN(Date.parse(m.creationTimestamp)));
    assert.equal(m.namespace, 'demo');
    assert.equal(res.body.status.phase, 'Pending');
    assert.equal(res.body.spec.serviceAccountName, 'default');
    const ns = await api.call('GET', '/api/v1/namespaces/demo');
    assert.equal(ns.body.metadata.labels['kubernetes.io/metadata.name'], 'demo');
    const got = await api.call('GET', `${PODS}/${m.name}`);
    assert.deepEqual(got.body, res.body);
  });

  test('404 for a missing object or namespace; 409 AlreadyExists; 422 Invalid; 400 on bad bodies', async () => {
    const missing = await api.call('GET', `${PODS}/nope`);
    assert.equal(missing.status, 404);
    assert.deepEqual(
      [missing.body.kind, missing.body.reason, missing.body.message],
      ['Status', 'NotFound', 'pods "nope" not found'],
    );
    const noNs = await api.call('POST', '/api/v1/namespaces/ghost/pods', pod('a'));
    assert.equal(noNs.status, 404);
    assert.equal(noNs.body.message, 'namespaces "ghost" not found');
    assert.equal((await api.call('POST', PODS, pod('dup'))).status, 201);
    const dup = await api.call('POST', PODS, pod('dup'));
    assert.deepEqual([dup.status, dup.body.reason], [409, 'AlreadyExists']);
    const bad = await api.call('POST', PODS, pod('Bad_Name'));
    assert.deepEqual(
      [bad.status, bad.body.reason, bad.body.details.causes[0].field],
      [422, 'Invalid', 'metadata.name'],
    );
    const noContainers = await api.call('POST', PODS, { metadata: { name: 'empty' }, spec: {} });
    assert.deepEqual(
      [noContainers.status, noContainers.body.details.causes[0].field],
      [422, 'spec.containers'],
    );
    for (const body of ['{"metadata": {', 'null', '[1]', '']) {
      const r = await api.call('POST', PODS, body);
      assert.equal(r.status, 400, body);
      assert.equal(r.body.reason, 'BadRequest');
      assert.ok(r.body.message.length > 0);
    }
    const wrongKind = await api.call('POST', PODS, { ...pod('k'), kind: 'Service' });
    assert.equal(wrongKind.status, 400);
    const yaml = await api.call(
      'POST',
      PODS,
      'metadata: {name: from-yaml}\nspec: {containers: [{name: c, image: i}]}\n',
      { 'Content-Type': 'application/yaml' },
    );
    assert.equal(yaml.status, 201);
    const badYaml = await api.call('POST', PODS, 'metadata: [unclosed', {
      'Content-Type': 'application/yaml',
    });
    assert.equal(badYaml.status, 400);
    assert.equal((await api.call('PUT', PODS, pod('x'))).status, 405);
    assert.equal((await api.call('GET', `${PODS}/dup/exec`)).status, 404);
    const apply = await api.call('PATCH', `${PODS}/dup`, 'x: 1', {
      'Content-Type': 'application/apply-patch+yaml',
    });
    assert.equal(apply.status, 415);
  });

  test('update: stale resourceVersion is 409 Conflict; the main resource does not change status', async () => {
    const created = (await api.call('POST', PODS, pod('upd'))).body;
    const changed = structuredClone(created);
    changed.metadata.labels = { v: '2' };
    changed.status = { phase: 'Running' };
    const ok = await api.call('PUT', `${PODS}/upd`, changed);
    assert.equal(ok.status, 200);
    assert.equal(ok.body.metadata.labels.v, '2');
    assert.equal(ok.body.status.phase, 'Pending', 'PUT on the pod keeps status');
    assert.ok(Number(ok.body.metadata.resourceVersion) > Number(created.metadata.resourceVersion));
    const stale = await api.call('PUT', `${PODS}/upd`, changed);
    assert.deepEqual([stale.status, stale.body.reason], [409, 'Conflict']);
    assert.match(stale.body.message, /the object has been modified/);
    const stalePatch = await api.call(
      'PATCH',
      `${PODS}/upd`,
      { metadata: { resourceVersion: created.metadata.resourceVersion, labels: { x: 'y' } } },
      MERGE,
    );
    assert.equal(stalePatch.status, 409);
  });

  test('status subresource: PUT/PATCH change status and metadata, never spec', async () => {
    await api.call('POST', PODS, pod('st', { nodeName: 'node-a' }));
    const patched = await api.call(
      'PATCH',
      `${PODS}/st/status`,
      {
        metadata: { annotations: { 'ambient.istio.io/redirection': 'enabled' } },
        status: { phase: 'Running', podIP: '10.0.0.5' },
        spec: { nodeName: 'other' },
      },
      MERGE,
    );
    assert.equal(patched.status, 200);
    assert.equal(patched.body.status.phase, 'Running');
    assert.equal(patched.body.metadata.annotations['ambient.istio.io/redirection'], 'enabled');
    assert.equal(patched.body.spec.nodeName, 'node-a');
    const put = structuredClone(patched.body);
    put.status.phase = 'Succeeded';
    put.spec.restartPolicy = 'Never';
    const r = await api.call('PUT', `${PODS}/st/status`, put);
    assert.equal(r.body.status.phase, 'Succeeded');
    assert.equal(r.body.spec.restartPolicy, 'Always');
  });

  test('merge, strategic merge and JSON patch of labels and annotations', async () => {
    await api.call('POST', PODS, pod('pt', { labels: { a: '1', b: '2' } }));
    const merge = await api.call('PATCH', `${PODS}/pt`, { metadata: { labels: { a: null, c: '3' } } }, MERGE);
    assert.deepEqual(merge.body.metadata.labels, { b: '2', c: '3' });
    const smp = await api.call(
      'PATCH',
      `${PODS}/pt`,
      { metadata: { annotations: { note: 'x' } } },
      { 'Content-Type': 'application/strategic-merge-patch+json' },
    );
    assert.deepEqual(smp.body.metadata.annotations, { note: 'x' });
    const json = await api.call(
      'PATCH',
      `${PODS}/pt`,
      [{ op: 'replace', path: '/metadata/labels/b', value: 'two' }],
      { 'Content-Type': 'application/json-patch+json' },
    );
    assert.equal(json.body.metadata.labels.b, 'two');
    const failing = await api.call(
      'PATCH',
      `${PODS}/pt`,
      [{ op: 'test', path: '/metadata/labels/b', value: 'nope' }],
      { 'Content-Type': 'application/json-patch+json' },
    );
    assert.deepEqual([failing.status, failing.body.reason], [422, 'Invalid']);
    const badLabel = await api.call(
      'PATCH',
      `${PODS}/pt`,
      { metadata: { labels: { ok: 'not valid!' } } },
      MERGE,
    );
    assert.equal(badLabel.status, 422);
    const rename = await api.call('PATCH', `${PODS}/pt`, { metadata: { name: 'other' } }, MERGE);
    assert.equal(rename.status, 422);
    const unchanged = await api.call('GET', `${PODS}/pt`);
    assert.equal(unchanged.body.metadata.labels.b, 'two', 'failed patches changed nothing');
  });

  test('list with label and field selectors, across namespaces', async () => {
    await api.call('POST', '/api/v1/namespaces', { metadata: { name: 'sel' } });
    const base = '/api/v1/namespaces/sel/pods';
    await api.call('POST', base, pod('s1', { labels: { app: 'web', tier: 'a' }, nodeName: 'n1' }));
    await api.call('POST', base, pod('s2', { labels: { app: 'db' }, nodeName: 'n2' }));
    await api.call('POST', base, pod('s3', { nodeName: 'n1' }));
    const names = async (q: string): Promise<string[]> =>
      (await api.call('GET', `${base}?${q}`)).body.items.map(
        (p: { metadata: { name: string } }) => p.metadata.name,
      );
    assert.deepEqual(await names('labelSelector=app%3Dweb'), ['s1']);
    assert.deepEqual(await names('labelSelector=app%20in%20(web,db)'), ['s1', 's2']);
    assert.deepEqual(await names('labelSelector=app%20notin%20(web)'), ['s2', 's3']);
    assert.deepEqual(await names('labelSelector=!app'), ['s3']);
    assert.deepEqual(await names('labelSelector=app,app!=db'), ['s1']);
    assert.deepEqual(await names('fieldSelector=spec.nodeName%3Dn1'), ['s1', 's3']);
    assert.deepEqual(await names('fieldSelector=metadata.name%3Ds2'), ['s2']);
    assert.deepEqual(await names('fieldSelector=status.phase%3DPending&labelSelector=tier'), ['s1']);
    assert.deepEqual(await names('limit=1&continue='), ['s1', 's2', 's3']);
    const all = await api.call('GET', '/api/v1/pods?fieldSelector=metadata.namespace%3Dsel');
    assert.equal(all.body.kind, 'PodList');
    assert.equal(all.body.items.length, 3);
    assert.match(all.body.metadata.resourceVersion, /^\d+$/);
    const badField = await api.call('GET', `${base}?fieldSelector=spec.containers%3Dx`);
    assert.deepEqual(
      [badField.status, badField.body.message],
      [400, 'field label not supported: spec.containers'],
    );
    assert.equal((await api.call('GET', `${base}?labelSelector=a%20in%20(b`)).status, 400);
  });

  test('deleting a namespace deletes its objects; DELETE preconditions are checked', async () => {
    await api.call('POST', '/api/v1/namespaces', { metadata: { name: 'gone' } });
    const p = (await api.call('POST', '/api/v1/namespaces/gone/pods', pod('p'))).body;
    await api.call('POST', '/api/v1/namespaces/gone/services', {
      metadata: { name: 'svc' },
      spec: { ports: [{ port: 80 }] },
    });
    const pre = await api.call('DELETE', '/api/v1/namespaces/gone/pods/p', {
      preconditions: { uid: 'other' },
    });
    assert.equal(pre.status, 409);
    const del = await api.call('DELETE', '/api/v1/namespaces/gone/pods/p', {
      kind: 'DeleteOptions',
      gracePeriodSeconds: 30,
      preconditions: { uid: p.metadata.uid },
    });
    assert.equal(del.status, 200);
    assert.equal((await api.call('GET', '/api/v1/namespaces/gone/pods/p')).status, 404);
    await api.call('POST', '/api/v1/namespaces/gone/pods', pod('p2'));
    assert.equal((await api.call('DELETE', '/api/v1/namespaces/gone')).status, 200);
    assert.equal((await api.call('GET', '/api/v1/namespaces/gone')).status, 404);
    assert.equal(
      (await api.call('GET', '/api/v1/pods?fieldSelector=metadata.namespace%3Dgone')).body.items.length,
      0,
    );
    assert.equal(
      (await api.call('GET', '/api/v1/services?fieldSelector=metadata.namespace%3Dgone')).body.items.length,
      0,
    );
  });

  test('DELETE of a scheduled pod is graceful, as in kube-apiserver: deletionTimestamp set, object kept until a grace-0 DELETE', async () => {
    const created = (await api.call('POST', PODS, pod('gr', { nodeName: 'node-a' }))).body;
    const uid = created.metadata.uid;
    const watch = await api.watch(
      `${PODS}?watch=true&fieldSelector=metadata.name%3Dgr&resourceVersion=${created.metadata.resourceVersion}`,
    );
    try {
      const before = Date.now();
      const del = await api.call('DELETE', `${PODS}/gr`);
      assert.equal(del.status, 200);
      const m = del.body.metadata;
      assert.equal(m.deletionGracePeriodSeconds, 30, 'spec.terminationGracePeriodSeconds (default 30)');
      const at = Date.parse(m.deletionTimestamp);
      assert.ok(
        at >= Math.floor(before / 1000) * 1000 + 29_000 && at <= Date.now() + 31_000,
        m.deletionTimestamp,
      );
      assert.match(m.deletionTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.equal(m.generation, created.metadata.generation + 1);
      const kept = await api.call('GET', `${PODS}/gr`);
      assert.equal(kept.status, 200, 'the object stays until the kubelet deletes it');
      assert.equal(kept.body.metadata.deletionTimestamp, m.deletionTimestamp);

      // A longer grace period changes nothing; a shorter one brings the deadline forward.
      const longer = await api.call('DELETE', `${PODS}/gr`, { gracePeriodSeconds: 60 });
      assert.equal(longer.status, 200);
      assert.equal(longer.body.metadata.deletionGracePeriodSeconds, 30);
      assert.equal(longer.body.metadata.deletionTimestamp, m.deletionTimestamp);
      const shorter = await api.call('DELETE', `${PODS}/gr`, { gracePeriodSeconds: 10 });
      assert.equal(shorter.body.metadata.deletionGracePeriodSeconds, 10);
      assert.equal(Date.parse(shorter.body.metadata.deletionTimestamp), at - 20_000);

      // Clients cannot clear it: writes keep deletionTimestamp and its grace period.
      const patched = await api.call(
        'PATCH',
        `${PODS}/gr`,
        { metadata: { labels: { x: 'y' }, deletionTimestamp: null, deletionGracePeriodSeconds: null } },
        MERGE,
      );
      assert.equal(patched.status, 200);
      assert.equal(patched.body.metadata.deletionTimestamp, shorter.body.metadata.deletionTimestamp);
      assert.equal(patched.body.metadata.deletionGracePeriodSeconds, 10);

      // The kubelet, once the containers are gone: grace 0 with the UID as precondition.
      const wrongUid = await api.call('DELETE', `${PODS}/gr`, {
        gracePeriodSeconds: 0,
        preconditions: { uid: 'other' },
      });
      assert.equal(wrongUid.status, 409);
      const final = await api.call('DELETE', `${PODS}/gr`, { gracePeriodSeconds: 0, preconditions: { uid } });
      assert.equal(final.status, 200);
      assert.equal((await api.call('GET', `${PODS}/gr`)).status, 404);
      const events = await watch.waitFor(4);
      assert.deepEqual(
        events.map((e) => [e.type, e.object.metadata.deletionGracePeriodSeconds ?? null]),
        [
          ['MODIFIED', 30],
          ['MODIFIED', 10],
          ['MODIFIED', 10],
          ['DELETED', 10],
        ],
      );
    } finally {
      watch.close();
    }

    // The pod's own terminationGracePeriodSeconds is the default; ?gracePeriodSeconds=0 (force) deletes at once.
    await api.call('POST', PODS, {
      ...pod('gr5', { nodeName: 'node-a' }),
      spec: { nodeName: 'node-a', terminationGracePeriodSeconds: 5, containers: [{ name: 'a', image: 'b' }] },
    });
    assert.equal((await api.call('DELETE', `${PODS}/gr5`)).body.metadata.deletionGracePeriodSeconds, 5);
    assert.equal((await api.call('DELETE', `${PODS}/gr5?gracePeriodSeconds=0`)).status, 200);
    assert.equal((await api.call('GET', `${PODS}/gr5`)).status, 404);
    // A pod that has finished (phase Succeeded) has nothing to stop: deleted at once.
    await api.call('POST', PODS, pod('done', { nodeName: 'node-a' }));
    await api.call('PATCH', `${PODS}/done/status`, { status: { phase: 'Succeeded' } }, MERGE);
    assert.equal((await api.call('DELETE', `${PODS}/done`)).status, 200);
    assert.equal((await api.call('GET', `${PODS}/done`)).status, 404);
    const bad = await api.call('DELETE', `${PODS}/x?gracePeriodSeconds=soon`);
    assert.equal(bad.status, 400);
  });

  test('services get a cluster IP; endpoints, endpointslices and nodes are stored', async () => {
    const svc = await api.call('POST', '/api/v1/namespaces/demo/services', {
      metadata: { name: 'web' },
      spec: { selector: { app: 'web' }, ports: [{ port: 80 }] },
    });
    assert.match(svc.body.spec.clusterIP, /^10\.96\.\d+\.\d+$/);
    assert.equal(svc.body.spec.ports[0].targetPort, 80);
    const slice = await api.call('POST', '/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices', {
      metadata: { name: 'web-abc', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.0.0.5'] }],
    });
    assert.equal(slice.status, 201);
    assert.equal(slice.body.apiVersion, 'discovery.k8s.io/v1');
    const listed = await api.call(
      'GET',
      '/apis/discovery.k8s.io/v1/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dweb',
    );
    assert.equal(listed.body.items.length, 1);
    assert.equal(
      (
        await api.call('POST', '/api/v1/namespaces/demo/endpoints', {
          metadata: { name: 'web' },
          subsets: [],
        })
      ).status,
      201,
    );
    const node = await api.call('POST', '/api/v1/nodes', {
      metadata: { name: 'node-a', labels: { zone: 'z1' } },
    });
    assert.equal(node.status, 201);
    assert.equal(node.body.metadata.namespace, undefined);
    assert.equal((await api.call('GET', '/api/v1/namespaces/demo/nodes/node-a')).status, 404);
  });
});

describe('lab API server: watch', () => {
  let api: LabApi;
  before(async () => {
    api = await LabApi.start({ historySize: 10, bookmarkIntervalMs: 50 });
    await api.call('POST', '/api/v1/namespaces', { metadata: { name: 'w' } });
  });
  after(() => api.stop());

  test('replays from a resourceVersion, then streams; selector changes turn into ADDED/DELETED', async () => {
    const start = (await api.call('GET', '/api/v1/namespaces/w/pods')).body.metadata.resourceVersion;
    await api.call('POST', '/api/v1/namespaces/w/pods', pod('a', { labels: { mesh: 'on' } }));
    const watch = await api.watch(
      `/api/v1/namespaces/w/pods?watch=true&resourceVersion=${start}&labelSelector=mesh%3Don`,
    );
    await watch.waitFor(1);
    await api.call('PATCH', '/api/v1/namespaces/w/pods/a', { metadata: { annotations: { x: '1' } } }, MERGE);
    await api.call('PATCH', '/api/v1/namespaces/w/pods/a', { metadata: { labels: { mesh: null } } }, MERGE);
    await api.call('POST', '/api/v1/namespaces/w/pods', pod('b'));
    await api.call('PATCH', '/api/v1/namespaces/w/pods/b', { metadata: { labels: { mesh: 'on' } } }, MERGE);
    await api.call('DELETE', '/api/v1/namespaces/w/pods/b');
    const events = await watch.waitFor(5);
    watch.close();
    assert.deepEqual(
      events.map((e) => `${e.type} ${e.object.metadata.name}`),
      ['ADDED a', 'MODIFIED a', 'DELETED a', 'ADDED b', 'DELETED b'],
    );
    const rvs = events.map((e) => Number(e.object.metadata.resourceVersion));
    assert.deepEqual(
      [...rvs].sort((x, y) => x - y),
      rvs,
      'resourceVersions increase',
    );
  });

  test('without a resourceVersion the current state comes first as ADDED; /watch/ paths work', async () => {
    const watch = await api.watch('/api/v1/watch/namespaces/w/pods');
    const events = await watch.waitFor(1);
    watch.close();
    assert.deepEqual(
      events.map((e) => `${e.type} ${e.object.metadata.name}`),
      ['ADDED a'],
    );
  });

  test('bookmarks carry the current resourceVersion; timeoutSeconds ends the stream', async () => {
    const rv = (await api.call('GET', '/api/v1/namespaces')).body.metadata.resourceVersion;
    const watch = await api.watch(
      `/api/v1/namespaces?watch=1&resourceVersion=${rv}&allowWatchBookmarks=true&timeoutSeconds=1`,
    );
    await watch.ended;
    assert.ok(watch.events.length >= 1);
    for (const e of watch.events) {
      assert.equal(e.type, 'BOOKMARK');
      assert.equal(e.object.kind, 'Namespace');
      assert.equal(e.object.metadata.resourceVersion, rv);
    }
  });

  test('a resourceVersion older than the history window gets an ERROR event with a 410 Status', async () => {
    const old = (await api.call('GET', '/api/v1/namespaces/w/pods')).body.metadata.resourceVersion;
    for (let i = 0; i < 12; i++)
      await api.call(
        'PATCH',
        '/api/v1/namespaces/w/pods/a',
        { metadata: { labels: { n: String(i) } } },
        MERGE,
      );
    const watch = await api.watch(`/api/v1/namespaces/w/pods?watch=true&resourceVersion=${old}`);
    await watch.ended;
    assert.equal(watch.events.length, 1);
    const [e] = watch.events;
    assert.equal(e!.type, 'ERROR');
    assert.deepEqual([e!.object.kind, e!.object.code, e!.object.reason], ['Status', 410, 'Expired']);
    assert.match(e!.object.message, /too old resource version/);
    const badRv = await api.call('GET', '/api/v1/namespaces/w/pods?watch=true&resourceVersion=abc');
    assert.equal(badRv.status, 400);
  });
});

describe('lab API server: tokens', () => {
  let api: LabApi;
  before(async () => {
    api = await LabApi.start();
  });
  after(() => api.stop());

  test('TokenRequest issues service-account tokens that TokenReview and the API accept', async () => {
    const sa = await api.call('GET', '/api/v1/namespaces/default/serviceaccounts/default');
    assert.equal(sa.status, 200, 'every namespace has a default service account');
    const p = (await api.call('POST', '/api/v1/namespaces/default/pods', pod('client'))).body;
    const tr = await api.call('POST', '/api/v1/namespaces/default/serviceaccounts/default/token', {
      spec: {
        audiences: ['istio-ca'],
        expirationSeconds: 3600,
        boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'client', uid: p.metadata.uid },
      },
    });
    assert.equal(tr.status, 201);
    const token: string = tr.body.status.token;
    assert.equal(token.split('.').length, 3);
    const review = async (t: string, audiences?: string[]) =>
      (
        await api.call('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          spec: { token: t, ...(audiences ? { audiences } : {}) },
        })
      ).body.status;
    const ok = await review(token, ['istio-ca']);
    assert.equal(ok.authenticated, true);
    assert.equal(ok.user.username, 'system:serviceaccount:default:default');
    assert.ok(ok.user.groups.includes('system:serviceaccounts:default'));
    assert.deepEqual(ok.user.extra['authentication.kubernetes.io/pod-name'], ['client']);
    assert.equal((await review(token, ['other'])).authenticated, false);
    assert.equal(
      (await review(`${token.slice(0, -4)}AAAA`, ['istio-ca'])).authenticated,
      false,
      'tampered signature',
    );
    assert.equal((await review('garbage', ['istio-ca'])).authenticated, false);
    const short = await api.call('POST', '/api/v1/namespaces/default/serviceaccounts/default/token', {
      spec: { expirationSeconds: 60 },
    });
    assert.equal(short.status, 422);
    const apiToken = (
      await api.call('POST', '/api/v1/namespaces/default/serviceaccounts/default/token', { spec: {} })
    ).body.status.token;
    assert.equal(
      (await api.call('GET', '/api/v1', undefined, {}, apiToken)).status,
      200,
      'SA tokens authenticate API calls',
    );
    assert.equal(
      (await api.call('GET', '/api/v1/namespaces', undefined, {}, apiToken)).status,
      403,
      'a default service account may read discovery, not the cluster (authorization.test.ts)',
    );
    await api.call('DELETE', '/api/v1/namespaces/default/pods/client');
    const afterDelete = await review(token, ['istio-ca']);
    assert.equal(afterDelete.authenticated, false);
    assert.match(afterDelete.error, /pod default\/client has been deleted/);
  });
});

describe('lab API server: persistence and concurrency', () => {
  test('a restart keeps objects, the resourceVersion counter and the credentials; old watches get 410', async () => {
    const first = await LabApi.start();
    await first.call('POST', '/api/v1/namespaces', {
      metadata: { name: 'keep', labels: { 'istio.io/dataplane-mode': 'ambient' } },
    });
    const created = (await first.call('POST', '/api/v1/namespaces/keep/pods', pod('p'))).body;
    const rvBefore = first.server.store.resourceVersion;
    const token = first.server.token;
    await first.stop(false);
    const state = JSON.parse(readFileSync(join(first.dir, 'state.json'), 'utf8'));
    assert.equal(state.resourceVersion, rvBefore);
    const second = await LabApi.start({}, first.dir);
    try {
      assert.equal(second.server.token, token);
      assert.ok(existsSync(join(first.dir, 'kubeconfig')));
      const got = await second.call('GET', '/api/v1/namespaces/keep/pods/p');
      assert.deepEqual(got.body, created);
      const ns = await second.call('GET', '/api/v1/namespaces/keep');
      assert.equal(ns.body.metadata.labels['istio.io/dataplane-mode'], 'ambient');
      const next = await second.call(
        'PATCH',
        '/api/v1/namespaces/keep/pods/p',
        { metadata: { labels: { a: 'b' } } },
        MERGE,
      );
      assert.equal(Number(next.body.metadata.resourceVersion), rvBefore + 1);
      // Resuming from the last version before the restart works; anything older must relist.
      const resumed = await second.watch(
        `/api/v1/namespaces/keep/pods?watch=true&resourceVersion=${rvBefore}`,
      );
      const [modified] = await resumed.waitFor(1);
      resumed.close();
      assert.equal(modified!.type, 'MODIFIED');
      assert.equal(modified!.object.metadata.resourceVersion, next.body.metadata.resourceVersion);
      const watch = await second.watch(
        `/api/v1/namespaces/keep/pods?watch=true&resourceVersion=${rvBefore - 1}`,
      );
      await watch.ended;
      assert.equal(watch.events[0]?.object.code, 410);
    } finally {
      await second.stop();
    }
  });

  test('a corrupt state file is a clear error, not an empty cluster', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'ambit-apiserver-'));
    try {
      writeFileSync(join(dir, 'state.json'), '{"version":1,');
      await assert.rejects(LabApi.start({}, dir), { code: 'APISERVER_STATE_CORRUPT' });
      assert.equal(readFileSync(join(dir, 'state.json'), 'utf8'), '{"version":1,', 'the file is left alone');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('concurrent creates and patches get unique resourceVersions and a watch sees every one', async () => {
    const api = await LabApi.start({ historySize: 1000 });
    try {
      await api.call('POST', '/api/v1/namespaces', { metadata: { name: 'c' } });
      const rv = (await api.call('GET', '/api/v1/namespaces/c/pods')).body.metadata.resourceVersion;
      const watch = await api.watch(`/api/v1/namespaces/c/pods?watch=true&resourceVersion=${rv}`);
      const N = 40;
      const created = await Promise.all(
        Array.from({ length: N }, (_, i) => api.call('POST', '/api/v1/namespaces/c/pods', pod(`p${i}`))),
      );
      const patched = await Promise.all(
        Array.from({ length: N }, (_, i) =>
          api.call(
            'PATCH',
            `/api/v1/namespaces/c/pods/p${i}`,
            { metadata: { annotations: { n: String(i) } } },
            MERGE,
          ),
        ),
      );
      const rvs = [...created, ...patched].map((r) => {
        assert.ok(r.status === 201 || r.status === 200, r.text);
        return r.body.metadata.resourceVersion;
      });
      assert.equal(new Set(rvs).size, 2 * N, 'every write has its own resourceVersion');
      const events = await watch.waitFor(2 * N);
      watch.close();
      assert.equal(events.filter((e) => e.type === 'ADDED').length, N);
      assert.equal(events.filter((e) => e.type === 'MODIFIED').length, N);
      const seen = events.map((e) => Number(e.object.metadata.resourceVersion));
      assert.deepEqual(
        seen,
        [...seen].sort((a, b) => a - b),
        'events arrive in resourceVersion order',
      );
      assert.deepEqual(new Set(seen), new Set(rvs.map(Number)));
    } finally {
      await api.stop();
    }
  });
});
