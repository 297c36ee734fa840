/**
 * Who may do what on the lab API server: authentication (admin token, service-account JWTs, the
 * kubelets' static tokens) then authorization as a real cluster does it — RBAC with Kubernetes'
 * default roles and the Istio charts' roles, and the Node authorizer (+ NodeRestriction) for kubelets.
 * Every refusal is a 403 `Status` in Kubernetes' wording, read by kubectl and @kubernetes/client-node.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApiException, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { LabApi, pod, type Response } from './helpers.js';

const MERGE = { 'Content-Type': 'application/merge-patch+json' };
const APP_USER = 'system:serviceaccount:default:default';

function tokenRequest(opts: { pod?: string; audiences?: string[] } = {}): object {
  return {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: {
      ...(opts.audiences ? { audiences: opts.audiences } : {}),
      expirationSeconds: 3600,
      ...(opts.pod ? { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: opts.pod } } : {}),
    },
  };
}

function assertForbidden(res: Response, message: string, details: object): void {
  assert.equal(res.status, 403, `expected 403, got ${res.status}: ${res.text}`);
  assert.deepEqual(res.body, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason: 'Forbidden',
    details,
    code: 403,
  });
}

describe('lab API server: authorization', () => {
  let api: LabApi;
  /** A token as the kubelet projects it into the app pod `default/app` (service account default). */
  let appToken: string;
  let agentToken: string;
  let istiodToken: string;
  let ztunnelApiToken: string;
  let kubeletA: string;

  const as = (token: string) => ({
    call: (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
      api.call(method, path, body, headers, token),
  });
  const mint = async (
    namespace: string,
    sa: string,
    opts: { pod?: string; audiences?: string[] } = {},
  ): Promise<string> => {
    const res = await api.call(
      'POST',
      `/api/v1/namespaces/${namespace}/serviceaccounts/${sa}/token`,
      tokenRequest(opts),
    );
    assert.equal(res.status, 201, res.text);
    return res.body.status.token as string;
  };

  before(async () => {
    api = await LabApi.start({ users: [{ name: 'system:node:node-a', groups: ['system:nodes'] }] });
    const admin = as(api.server.token);
    assert.equal(
      (await admin.call('POST', '/api/v1/namespaces', { metadata: { name: 'istio-system' } })).status,
      201,
    );
    for (const sa of ['ztunnel', 'istio-cni', 'istiod'])
      assert.equal(
        (
          await admin.call('POST', '/api/v1/namespaces/istio-system/serviceaccounts', {
            metadata: { name: sa },
          })
        ).status,
        201,
      );
    for (const [ns, p] of [
      ['default', { ...pod('app', { nodeName: 'node-a' }) }],
      ['default', { ...pod('web', { nodeName: 'node-b' }) }],
      ['istio-system', withSa(pod('ztunnel-a', { nodeName: 'node-a' }), 'ztunnel')],
      ['istio-system', withSa(pod('ztunnel-b', { nodeName: 'node-b' }), 'ztunnel')],
    ] as const)
      assert.equal((await admin.call('POST', `/api/v1/namespaces/${ns}/pods`, p)).status, 201);
    appToken = await mint('default', 'default', { pod: 'app' });
    agentToken = await mint('istio-system', 'istio-cni');
    istiodToken = await mint('istio-system', 'istiod');
    ztunnelApiToken = await mint('istio-system', 'ztunnel', { pod: 'ztunnel-a' });
    kubeletA = api.server.userToken('system:node:node-a');
  });
  after(() => api.stop());

  test('an application pod token cannot list pods (403 Status in Kubernetes wording)', async () => {
    const app = as(appToken);
    assertForbidden(
      await app.call('GET', '/api/v1/namespaces/default/pods'),
      `pods is forbidden: User "${APP_USER}" cannot list resource "pods" in API group "" in the namespace "default"`,
      { kind: 'pods' },
    );
    assertForbidden(
      await app.call('GET', '/api/v1/pods?watch=true'),
      `pods is forbidden: User "${APP_USER}" cannot watch resource "pods" in API group "" at the cluster scope`,
      { kind: 'pods' },
    );
    assertForbidden(
      await app.call('GET', '/api/v1/namespaces/default/pods/app'),
      `pods "app" is forbidden: User "${APP_USER}" cannot get resource "pods" in API group "" in the namespace "default"`,
      { name: 'app', kind: 'pods' },
    );
    assertForbidden(
      await app.call('GET', '/apis/discovery.k8s.io/v1/endpointslices'),
      `endpointslices.discovery.k8s.io is forbidden: User "${APP_USER}" cannot list resource "endpointslices" in API group "discovery.k8s.io" at the cluster scope`,
      { group: 'discovery.k8s.io', kind: 'endpointslices' },
    );
  });

  test('an application pod token cannot patch or label a namespace; nothing changes', async () => {
    const app = as(appToken);
    const before = (await api.call('GET', '/api/v1/namespaces/default')).body;
    assertForbidden(
      await app.call(
        'PATCH',
        '/api/v1/namespaces/default',
        { metadata: { labels: { 'istio.io/dataplane-mode': 'none' } } },
        MERGE,
      ),
      `namespaces "default" is forbidden: User "${APP_USER}" cannot patch resource "namespaces" in API group "" in the namespace "default"`,
      { name: 'default', kind: 'namespaces' },
    );
    assertForbidden(
      await app.call('PUT', '/api/v1/namespaces/default', {
        ...before,
        metadata: { ...before.metadata, labels: { x: 'y' } },
      }),
      `namespaces "default" is forbidden: User "${APP_USER}" cannot update resource "namespaces" in API group "" in the namespace "default"`,
      { name: 'default', kind: 'namespaces' },
    );
    assertForbidden(
      await app.call('DELETE', '/api/v1/namespaces/default'),
      `namespaces "default" is forbidden: User "${APP_USER}" cannot delete resource "namespaces" in API group "" in the namespace "default"`,
      { name: 'default', kind: 'namespaces' },
    );
    const afterwards = (await api.call('GET', '/api/v1/namespaces/default')).body;
    assert.equal(afterwards.metadata.resourceVersion, before.metadata.resourceVersion);
  });

  test('an application pod token cannot mint tokens (not for ztunnel, not for itself) nor review tokens', async () => {
    const app = as(appToken);
    assertForbidden(
      await app.call(
        'POST',
        '/api/v1/namespaces/istio-system/serviceaccounts/ztunnel/token',
        tokenRequest({ pod: 'ztunnel-a', audiences: ['istio-ca'] }),
      ),
      `serviceaccounts "ztunnel" is forbidden: User "${APP_USER}" cannot create resource "serviceaccounts/token" in API group "" in the namespace "istio-system"`,
      { name: 'ztunnel', kind: 'serviceaccounts' },
    );
    assertForbidden(
      await app.call('POST', '/api/v1/namespaces/default/serviceaccounts/default/token', tokenRequest()),
      `serviceaccounts "default" is forbidden: User "${APP_USER}" cannot create resource "serviceaccounts/token" in API group "" in the namespace "default"`,
      { name: 'default', kind: 'serviceaccounts' },
    );
    assertForbidden(
      await app.call('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token: agentToken },
      }),
      `tokenreviews.authentication.k8s.io is forbidden: User "${APP_USER}" cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope`,
      { group: 'authentication.k8s.io', kind: 'tokenreviews' },
    );
    assertForbidden(
      await app.call('POST', '/api/v1/namespaces/default/pods', pod('sneaky')),
      `pods is forbidden: User "${APP_USER}" cannot create resource "pods" in API group "" in the namespace "default"`,
      { kind: 'pods' },
    );
  });

  test('an application pod token still reads discovery, as system:discovery allows; no token is 401', async () => {
    const app = as(appToken);
    for (const path of ['/api', '/api/v1', '/apis', '/apis/discovery.k8s.io/v1', '/version', '/openapi/v3'])
      assert.equal((await app.call('GET', path)).status, 200, path);
    const anonymous = await api.call('GET', '/api/v1/namespaces/default/pods', undefined, {}, null);
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.body.reason, 'Unauthorized');
    assert.equal(anonymous.body.kind, 'Status');
  });

  test('kubectl and @kubernetes/client-node show the refusal', async () => {
    const kubeconfig = join(api.dir, 'kubeconfig-app');
    api.server.writeKubeconfig(kubeconfig);
    const r = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(
        'kubectl',
        [
          '--kubeconfig',
          kubeconfig,
          '--cache-dir',
          join(api.dir, 'cache'),
          '--token',
          appToken,
          'get',
          'pods',
        ],
        { timeout: 30_000 },
        (err, _stdout, stderr) => resolve({ code: err ? 1 : 0, stderr }),
      ),
    );
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /Error from server \(Forbidden\): pods is forbidden: User "system:serviceaccount:default:default" cannot list resource "pods" in API group "" in the namespace "default"/,
    );
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        { name: 'lab', server: api.server.url, caData: Buffer.from(api.server.caPem).toString('base64') },
      ],
      users: [{ name: 'app', token: appToken }],
      contexts: [{ name: 'lab', cluster: 'lab', user: 'app' }],
      currentContext: 'lab',
    });
    const core = kc.makeApiClient(CoreV1Api);
    await assert.rejects(core.listNamespacedPod({ namespace: 'default' }), (err: unknown) => {
      assert.ok(err instanceof ApiException, String(err));
      assert.equal(err.code, 403);
      assert.match(String(err.body), /"reason":"Forbidden"/);
      assert.match(String(err.body), /cannot list resource \\"pods\\"/);
      return true;
    });
  });

  test('kubectl auth can-i and whoami answer from the same authorizers (SelfSubjectAccessReview, SelfSubjectReview)', async () => {
    const kubeconfig = join(api.dir, 'kubeconfig-can-i');
    api.server.writeKubeconfig(kubeconfig);
    const kubectl = (token: string, ...args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(
          'kubectl',
          ['--kubeconfig', kubeconfig, '--cache-dir', join(api.dir, 'cache'), '--token', token, ...args],
          { timeout: 30_000 },
          (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }),
        ),
      );
    const no = await kubectl(appToken, 'auth', 'can-i', 'list', 'pods', '-n', 'default');
    assert.deepEqual([no.code, no.stdout.trim()], [1, 'no'], no.stderr);
    const tokenForZtunnel = await kubectl(
      appToken,
      'auth',
      'can-i',
      'create',
      'serviceaccounts/token',
      '-n',
      'istio-system',
    );
    assert.equal(tokenForZtunnel.stdout.trim(), 'no', tokenForZtunnel.stderr);
    const yes = await kubectl(
      agentToken,
      'auth',
      'can-i',
      'patch',
      'pods',
      '--subresource=status',
      '-n',
      'default',
    );
    assert.deepEqual([yes.code, yes.stdout.trim()], [0, 'yes'], yes.stderr);
    const agentNo = await kubectl(agentToken, 'auth', 'can-i', 'patch', 'pods', '-n', 'default');
    assert.equal(agentNo.stdout.trim(), 'no', agentNo.stderr);
    const who = await kubectl(appToken, 'auth', 'whoami', '-o', 'json');
    assert.equal(who.code, 0, who.stderr);
    const review = JSON.parse(who.stdout);
    assert.equal(review.status.userInfo.username, APP_USER);
    assert.ok(review.status.userInfo.groups.includes('system:serviceaccounts:default'));
    const node = await as(kubeletA).call('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectAccessReview',
      spec: {
        resourceAttributes: {
          namespace: 'istio-system',
          verb: 'create',
          resource: 'serviceaccounts',
          subresource: 'token',
          name: 'istiod',
        },
      },
    });
    assert.equal(node.status, 201, node.text);
    assert.equal(node.body.status.allowed, false);
    assert.equal(node.body.status.reason, "no relationship found between node 'node-a' and this object");
  });

  test('the node agent (istio-cni) may watch pods and namespaces and annotate pods/status, nothing more', async () => {
    const agent = as(agentToken);
    const user = 'system:serviceaccount:istio-system:istio-cni';
    assert.equal((await agent.call('GET', '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a')).status, 200);
    assert.equal((await agent.call('GET', '/api/v1/namespaces')).status, 200);
    assert.equal((await agent.call('GET', '/api/v1/namespaces/default')).status, 200);
    assert.equal((await agent.call('GET', '/api/v1/namespaces/default/pods/app')).status, 200);
    assert.equal((await agent.call('GET', '/api/v1/nodes')).status, 200);
    const annotated = await agent.call(
      'PATCH',
      '/api/v1/namespaces/default/pods/app/status',
      { metadata: { annotations: { 'ambient.istio.io/redirection': 'enabled' } } },
      MERGE,
    );
    assert.equal(annotated.status, 200, annotated.text);
    assertForbidden(
      await agent.call(
        'PATCH',
        '/api/v1/namespaces/default/pods/app',
        { metadata: { labels: { a: 'b' } } },
        MERGE,
      ),
      `pods "app" is forbidden: User "${user}" cannot patch resource "pods" in API group "" in the namespace "default"`,
      { name: 'app', kind: 'pods' },
    );
    assertForbidden(
      await agent.call('DELETE', '/api/v1/namespaces/default'),
      `namespaces "default" is forbidden: User "${user}" cannot delete resource "namespaces" in API group "" in the namespace "default"`,
      { name: 'default', kind: 'namespaces' },
    );
    assertForbidden(
      await agent.call('PATCH', '/api/v1/namespaces/default', { metadata: { labels: { a: 'b' } } }, MERGE),
      `namespaces "default" is forbidden: User "${user}" cannot patch resource "namespaces" in API group "" in the namespace "default"`,
      { name: 'default', kind: 'namespaces' },
    );
    assertForbidden(
      await agent.call(
        'POST',
        '/api/v1/namespaces/istio-system/serviceaccounts/ztunnel/token',
        tokenRequest({ pod: 'ztunnel-a', audiences: ['istio-ca'] }),
      ),
      `serviceaccounts "ztunnel" is forbidden: User "${user}" cannot create resource "serviceaccounts/token" in API group "" in the namespace "istio-system"`,
      { name: 'ztunnel', kind: 'serviceaccounts' },
    );
    assert.equal((await agent.call('GET', '/api/v1/services')).status, 403);
    assert.equal((await agent.call('POST', '/api/v1/namespaces/default/pods', pod('x'))).status, 403);
  });

  test('the control plane (istiod) may watch the cluster and review tokens, but not mint or write', async () => {
    const istiod = as(istiodToken);
    const user = 'system:serviceaccount:istio-system:istiod';
    for (const path of [
      '/api/v1/pods',
      '/api/v1/services',
      '/api/v1/namespaces',
      '/api/v1/nodes',
      '/api/v1/endpoints',
      '/apis/discovery.k8s.io/v1/endpointslices',
      '/api/v1/namespaces/istio-system/pods',
      '/api/v1/namespaces/default/pods/app',
    ])
      assert.equal((await istiod.call('GET', path)).status, 200, path);
    const review = await istiod.call('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token: appToken },
    });
    assert.equal(review.status, 201, review.text);
    assert.equal(review.body.status.user.username, APP_USER);
    assertForbidden(
      await istiod.call(
        'POST',
        '/api/v1/namespaces/istio-system/serviceaccounts/ztunnel/token',
        tokenRequest(),
      ),
      `serviceaccounts "ztunnel" is forbidden: User "${user}" cannot create resource "serviceaccounts/token" in API group "" in the namespace "istio-system"`,
      { name: 'ztunnel', kind: 'serviceaccounts' },
    );
    assert.equal(
      (await istiod.call('PATCH', '/api/v1/namespaces/default/pods/app/status', { status: {} }, MERGE))
        .status,
      403,
    );
    assert.equal((await istiod.call('DELETE', '/api/v1/namespaces/default/pods/web')).status, 403);
  });

  test('ztunnel has no API rights of its own (it talks to the control plane)', async () => {
    const z = as(ztunnelApiToken);
    const user = 'system:serviceaccount:istio-system:ztunnel';
    assertForbidden(
      await z.call('GET', '/api/v1/pods'),
      `pods is forbidden: User "${user}" cannot list resource "pods" in API group "" at the cluster scope`,
      { kind: 'pods' },
    );
    assert.equal(
      (await z.call('POST', '/api/v1/namespaces/istio-system/serviceaccounts/ztunnel/token', tokenRequest()))
        .status,
      403,
    );
  });

  test('a kubelet may write status and mint tokens only for pods bound to its node', async () => {
    const kubelet = as(kubeletA);
    const user = 'system:node:node-a';
    assert.equal(
      (await kubelet.call('GET', '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a')).status,
      200,
    );
    const mine = await kubelet.call(
      'PATCH',
      '/api/v1/namespaces/default/pods/app/status',
      { status: { phase: 'Running' } },
      MERGE,
    );
    assert.equal(mine.status, 200, mine.text);
    assertForbidden(
      await kubelet.call(
        'PATCH',
        '/api/v1/namespaces/default/pods/web/status',
        { status: { phase: 'Failed' } },
        MERGE,
      ),
      `pods "web" is forbidden: node "node-a" can only update pod status for pods with spec.nodeName set to itself`,
      { name: 'web', kind: 'pods' },
    );
    const token = await kubelet.call(
      'POST',
      '/api/v1/namespaces/istio-system/serviceaccounts/ztunnel/token',
      tokenRequest({ pod: 'ztunnel-a', audiences: ['istio-ca'] }),
    );
    assert.equal(token.status, 201, token.text);
    assertForbidden(
      await kubelet.call(
        'POST',
        '/api/v1/namespaces/istio-system/serviceaccounts/ztunnel/token',
        tokenRequest({ pod: 'ztunnel-b', audiences: ['istio-ca'] }),
      ),
      `serviceaccounts "ztunnel" is forbidden: node requested token bound to a pod scheduled on a different node`,
      { name: 'ztunnel', kind: 'serviceaccounts' },
    );
    assertForbidden(
      await kubelet.call(
        'POST',
        '/api/v1/namespaces/istio-system/serviceaccounts/ztunnel/token',
        tokenRequest(),
      ),
      `serviceaccounts "ztunnel" is forbidden: node requested token not bound to a pod`,
      { name: 'ztunnel', kind: 'serviceaccounts' },
    );
    assertForbidden(
      await kubelet.call(
        'POST',
        '/api/v1/namespaces/istio-system/serviceaccounts/istiod/token',
        tokenRequest(),
      ),
      `serviceaccounts "istiod" is forbidden: User "${user}" cannot create resource "serviceaccounts/token" in API group "" in the namespace "istio-system": no relationship found between node 'node-a' and this object`,
      { name: 'istiod', kind: 'serviceaccounts' },
    );
    assertForbidden(
      await kubelet.call('DELETE', '/api/v1/namespaces/default'),
      `namespaces "default" is forbidden: User "${user}" cannot delete resource "namespaces" in API group "" in the namespace "default"`,
      { name: 'default', kind: 'namespaces' },
    );
  });

  test('the admin (system:masters) may do everything', async () => {
    const admin = as(api.server.token);
    assert.equal(
      (await admin.call('POST', '/api/v1/namespaces', { metadata: { name: 'scratch' } })).status,
      201,
    );
    assert.equal(
      (await admin.call('PATCH', '/api/v1/namespaces/scratch', { metadata: { labels: { a: 'b' } } }, MERGE))
        .status,
      200,
    );
    assert.equal((await admin.call('GET', '/api/v1/pods')).status, 200);
    assert.equal(
      (
        await admin.call(
          'POST',
          '/api/v1/namespaces/istio-system/serviceaccounts/istiod/token',
          tokenRequest(),
        )
      ).status,
      201,
    );
    const review = await admin.call('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token: appToken },
    });
    assert.equal(review.status, 201);
    assert.equal((await admin.call('DELETE', '/api/v1/namespaces/scratch')).status, 200);
  });
});

function withSa(p: object, serviceAccountName: string): object {
  const o = p as { spec: Record<string, unknown> };
  return { ...o, spec: { ...o.spec, serviceAccountName } };
}
