/**
 * CustomResourceDefinitions in the lab API server, as kube-apiserver serves them: an accepted CRD is
 * Established and its resource appears in discovery and at its REST paths with list, watch, get,
 * create, update, patch, delete and resourceVersions; RBAC applies as to built-in resources; a bad
 * CRD is a 422; deleting the CRD deletes its objects; both survive a restart (the state file).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AUTHORIZATION_POLICY_CRD } from '../../src/lab/cluster/istio-crds.js';
import { LabApi } from './helpers.js';

const CRDS = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
const APS = (ns: string) => `/apis/security.istio.io/v1/namespaces/${ns}/authorizationpolicies`;

const policy = (name: string, action = 'DENY') => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name },
  spec: { action, rules: [{ from: [{ source: { namespaces: ['other'] } }] }] },
});

describe('lab API server: custom resources', () => {
  let api: LabApi;
  before(async () => {
    api = await LabApi.start();
    assert.equal((await api.call('POST', '/api/v1/namespaces', { metadata: { name: 'mesh' } })).status, 201);
  });
  after(() => api.stop());

  test('before its CRD exists the resource is not served (404), its group not listed', async () => {
    assert.equal((await api.call('GET', APS('mesh'))).status, 404);
    const groups = (await api.call('GET', '/apis')).body.groups.map((g: { name: string }) => g.name);
    assert.ok(groups.includes('apiextensions.k8s.io'));
    assert.ok(!groups.includes('security.istio.io'));
  });

  test('a CRD without a storage version or with a name that is not <plural>.<group> is a 422', async () => {
    const bad = structuredClone(AUTHORIZATION_POLICY_CRD) as {
      metadata: { name: string };
      spec: { versions: object[] };
    };
    bad.metadata.name = 'policies.security.istio.io';
    bad.spec.versions = [];
    const res = await api.call('POST', CRDS, bad);
    assert.equal(res.status, 422, res.text);
    const fields = res.body.details.causes.map((c: { field: string }) => c.field).sort();
    assert.deepEqual(fields, ['metadata.name', 'spec.versions']);
  });

  test('an accepted CRD is Established and its resource is discovered', async () => {
    const res = await api.call('POST', CRDS, AUTHORIZATION_POLICY_CRD);
    assert.equal(res.status, 201, res.text);
    const types = res.body.status.conditions.map(
      (c: { type: string; status: string }) => `${c.type}=${c.status}`,
    );
    assert.deepEqual(types, ['NamesAccepted=True', 'Established=True']);
    assert.deepEqual(res.body.status.storedVersions, ['v1']);
    const groups = (await api.call('GET', '/apis')).body.groups;
    const group = groups.find((g: { name: string }) => g.name === 'security.istio.io');
    assert.deepEqual(group?.preferredVersion, { groupVersion: 'security.istio.io/v1', version: 'v1' });
    const list = await api.call('GET', '/apis/security.istio.io/v1');
    assert.equal(list.status, 200);
    const ap = list.body.resources.find((r: { name: string }) => r.name === 'authorizationpolicies');
    assert.equal(ap.kind, 'AuthorizationPolicy');
    assert.equal(ap.namespaced, true);
    assert.deepEqual(ap.shortNames, ['ap']);
    assert.ok(ap.verbs.includes('watch'));
  });

  test('objects: create, get, list, watch, update, patch, delete with resourceVersions', async () => {
    const watch = await api.watch('/apis/security.istio.io/v1/authorizationpolicies?watch=true');
    try {
      const created = await api.call('POST', APS('mesh'), policy('deny-other'));
      assert.equal(created.status, 201, created.text);
      assert.equal(created.body.metadata.namespace, 'mesh');
      assert.match(created.body.metadata.resourceVersion, /^\d+$/);
      assert.equal((await api.call('POST', APS('mesh'), policy('deny-other'))).status, 409);
      assert.equal((await api.call('POST', APS('nowhere'), policy('x'))).status, 404, 'namespace must exist');
      const got = await api.call('GET', `${APS('mesh')}/deny-other`);
      assert.deepEqual(got.body.spec, policy('deny-other').spec);
      const listed = await api.call('GET', '/apis/security.istio.io/v1/authorizationpolicies');
      assert.equal(listed.body.kind, 'AuthorizationPolicyList');
      assert.deepEqual(
        listed.body.items.map((i: { metadata: { name: string } }) => i.metadata.name),
        ['deny-other'],
      );

      const updated = await api.call('PUT', `${APS('mesh')}/deny-other`, {
        ...got.body,
        spec: { action: 'ALLOW', rules: [{}] },
      });
      assert.equal(updated.status, 200, updated.text);
      assert.equal(
        Number(updated.body.metadata.resourceVersion) > Number(got.body.metadata.resourceVersion),
        true,
      );
      const stale = await api.call('PUT', `${APS('mesh')}/deny-other`, got.body);
      assert.equal(stale.status, 409, 'a write with an old resourceVersion conflicts');
      const patched = await api.call(
        'PATCH',
        `${APS('mesh')}/deny-other`,
        { spec: { action: 'DENY' } },
        { 'Content-Type': 'application/merge-patch+json' },
      );
      assert.equal(patched.status, 200, patched.text);
      assert.equal(patched.body.spec.action, 'DENY');
      assert.equal((await api.call('DELETE', `${APS('mesh')}/deny-other`)).status, 200);
      assert.equal((await api.call('GET', `${APS('mesh')}/deny-other`)).status, 404);

      const events = await watch.waitFor(4);
      assert.deepEqual(
        events.map((e) => e.type),
        ['ADDED', 'MODIFIED', 'MODIFIED', 'DELETED'],
      );
      assert.equal(events[0]!.object.kind, 'AuthorizationPolicy');
    } finally {
      watch.close();
    }
  });

  test('RBAC: istiod may list and watch them (its chart role), an app pod may not', async () => {
    for (const sa of ['istiod']) {
      await api.call('POST', '/api/v1/namespaces', { metadata: { name: 'istio-system' } });
      await api.call('POST', '/api/v1/namespaces/istio-system/serviceaccounts', { metadata: { name: sa } });
    }
    const mint = async (ns: string, sa: string) =>
      (
        await api.call('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { expirationSeconds: 3600 },
        })
      ).body.status.token as string;
    const istiod = await mint('istio-system', 'istiod');
    const app = await mint('mesh', 'default');
    const path = '/apis/security.istio.io/v1/authorizationpolicies';
    assert.equal((await api.call('GET', path, undefined, {}, istiod)).status, 200);
    const denied = await api.call('GET', path, undefined, {}, app);
    assert.equal(denied.status, 403);
    assert.match(
      denied.body.message,
      /cannot list resource "authorizationpolicies" in API group "security.istio.io"/,
    );
    assert.equal((await api.call('POST', APS('mesh'), policy('p'), {}, istiod)).status, 403, 'read-only');
  });

  test('objects and CRDs survive a restart; deleting the CRD deletes its objects', async () => {
    assert.equal((await api.call('POST', APS('mesh'), policy('kept'))).status, 201);
    await api.stop(false);
    api = await LabApi.start({}, api.dir);
    const got = await api.call('GET', `${APS('mesh')}/kept`);
    assert.equal(got.status, 200, got.text);
    const watch = await api.watch(
      `${APS('mesh')}?watch=true&resourceVersion=${got.body.metadata.resourceVersion}`,
    );
    try {
      const del = await api.call('DELETE', `${CRDS}/authorizationpolicies.security.istio.io`);
      assert.equal(del.status, 200, del.text);
      const [event] = await watch.waitFor(1);
      assert.equal(event!.type, 'DELETED');
      assert.equal(event!.object.metadata.name, 'kept');
    } finally {
      watch.close();
    }
    assert.equal((await api.call('GET', APS('mesh'))).status, 404);
    // Defined again, it starts empty.
    assert.equal((await api.call('POST', CRDS, AUTHORIZATION_POLICY_CRD)).status, 201);
    assert.deepEqual((await api.call('GET', APS('mesh'))).body.items, []);
  });
});
