/**
 * The official @kubernetes/client-node client against the lab API server: typed calls, raw watches,
 * and informers (ListWatch) with the node agent's field selector, including the relist after a 410.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  ListWatch,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  type V1Namespace,
  type V1Pod,
  Watch,
} from '@kubernetes/client-node';
import { findResource } from '../../src/lab/apiserver/resources.js';
import { CONDITION_DEADLINE_MS } from '../helpers/wait.js';
import { eventually, LabApi, pod } from './helpers.js';

const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

describe('lab API server with @kubernetes/client-node', () => {
  let api: LabApi;
  let kc: KubeConfig;
  let core: CoreV1Api;
  before(async () => {
    api = await LabApi.start({ historySize: 5 });
    kc = new KubeConfig();
    kc.loadFromFile(api.server.kubeconfigPath!);
    core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'cn' } } });
  });
  after(() => api.stop());

  test('typed calls: create, list with selectors, patch status annotations, errors as ApiException', async () => {
    const created = await core.createNamespacedPod({
      namespace: 'cn',
      body: pod('a', { nodeName: 'node-1', labels: { app: 'x' } }) as V1Pod,
    });
    assert.equal(created.metadata?.namespace, 'cn');
    const listed = await core.listPodForAllNamespaces({
      fieldSelector: 'spec.nodeName=node-1',
      labelSelector: 'app in (x)',
    });
    assert.deepEqual(
      listed.items.map((p) => p.metadata?.name),
      ['a'],
    );
    const patched = await core.patchNamespacedPodStatus(
      {
        name: 'a',
        namespace: 'cn',
        body: { metadata: { annotations: { 'ambient.istio.io/redirection': 'enabled' } } },
      },
      merge,
    );
    assert.equal(patched.metadata?.annotations?.['ambient.istio.io/redirection'], 'enabled');
    await assert.rejects(core.readNamespacedPod({ name: 'missing', namespace: 'cn' }), (err: unknown) => {
      assert.ok(err instanceof ApiException);
      assert.equal(err.code, 404);
      return true;
    });
    await assert.rejects(
      core.createNamespacedPod({ namespace: 'cn', body: pod('a') as V1Pod }),
      (err: unknown) => (err as ApiException<unknown>).code === 409,
    );
  });

  test('Watch streams ADDED/MODIFIED/DELETED with a field selector', async () => {
    const seen: string[] = [];
    const rv = (await core.listNamespacedPod({ namespace: 'cn' })).metadata?.resourceVersion;
    let doneErr: unknown = 'not done';
    const controller = await new Watch(kc).watch(
      '/api/v1/namespaces/cn/pods',
      { resourceVersion: rv, fieldSelector: 'spec.nodeName=node-2', allowWatchBookmarks: true },
      (type, obj: V1Pod) => seen.push(`${type} ${obj.metadata?.name}`),
      (err) => {
        doneErr = err;
      },
    );
    await core.createNamespacedPod({ namespace: 'cn', body: pod('w1', { nodeName: 'node-2' }) as V1Pod });
    await core.createNamespacedPod({ namespace: 'cn', body: pod('other', { nodeName: 'node-3' }) as V1Pod });
    await core.patchNamespacedPod(
      { name: 'w1', namespace: 'cn', body: { metadata: { labels: { x: 'y' } } } },
      merge,
    );
    // Grace 0, as the kubelet finishes a deletion (a graceful one only marks the pod, see rest.test.ts).
    await core.deleteNamespacedPod({ name: 'w1', namespace: 'cn', gracePeriodSeconds: 0 });
    await eventually(() => seen.length >= 3, CONDITION_DEADLINE_MS, 'three watch events');
    controller.abort();
    assert.deepEqual(seen, ['ADDED w1', 'MODIFIED w1', 'DELETED w1']);
    await eventually(() => doneErr !== 'not done', CONDITION_DEADLINE_MS, 'watch done callback');
  });

  test('informers: pods on one node (field selector) and all namespaces; a 410 makes the pod informer relist', async () => {
    const events: string[] = [];
    let lists = 0;
    const pods = new ListWatch<V1Pod>(
      '/api/v1/pods',
      new Watch(kc),
      () => {
        lists++;
        return core.listPodForAllNamespaces({ fieldSelector: 'spec.nodeName=node-9' });
      },
      false,
      undefined,
      'spec.nodeName=node-9',
    );
    for (const verb of ['add', 'update', 'delete'] as const)
      pods.on(verb, (p) => events.push(`${verb} ${p.metadata?.name}`));
    const nsEvents: string[] = [];
    const namespaces = makeInformer<V1Namespace>(kc, '/api/v1/namespaces', () => core.listNamespace());
    for (const verb of ['add', 'update', 'delete'] as const)
      namespaces.on(verb, (n) => nsEvents.push(`${verb} ${n.metadata?.name}`));
    try {
      await core.createNamespacedPod({
        namespace: 'cn',
        body: pod('before', { nodeName: 'node-9' }) as V1Pod,
      });
      await pods.start();
      await namespaces.start();
      await eventually(() => events.includes('add before'), CONDITION_DEADLINE_MS, 'initial list');
      await eventually(() => nsEvents.includes('add cn'), CONDITION_DEADLINE_MS, 'namespace list');

      await core.createNamespacedPod({ namespace: 'cn', body: pod('p1', { nodeName: 'node-9' }) as V1Pod });
      await core.createNamespacedPod({
        namespace: 'cn',
        body: pod('elsewhere', { nodeName: 'node-8' }) as V1Pod,
      });
      await core.patchNamespacedPod(
        {
          name: 'p1',
          namespace: 'cn',
          body: { metadata: { labels: { 'istio.io/dataplane-mode': 'ambient' } } },
        },
        merge,
      );
      await core.patchNamespace(
        { name: 'cn', body: { metadata: { labels: { 'istio.io/dataplane-mode': 'ambient' } } } },
        merge,
      );
      await core.createNamespace({ body: { metadata: { name: 'cn-new' } } });
      await core.deleteNamespace({ name: 'cn-new' });
      await core.deleteNamespacedPod({ name: 'p1', namespace: 'cn', gracePeriodSeconds: 0 });
      await eventually(() => events.includes('delete p1'), CONDITION_DEADLINE_MS, 'pod delete');
      await eventually(() => nsEvents.includes('delete cn-new'), CONDITION_DEADLINE_MS, 'namespace delete');
      assert.deepEqual(events, ['add before', 'add p1', 'update p1', 'delete p1']);
      assert.deepEqual(
        nsEvents.filter((e) => /cn/.test(e)),
        ['add cn', 'update cn', 'add cn-new', 'delete cn-new'],
      );
      assert.equal(pods.get('before', 'cn')?.metadata?.name, 'before');
      assert.equal(lists, 1);

      // Drop the watches and, before the informer is back, change more than the history window holds:
      // its resume version is gone, it gets a 410 and must relist to learn of what it missed.
      const store = api.server.store;
      const r = findResource('', 'v1', 'pods')!;
      api.server.dropWatches();
      store.delete(r, 'cn', 'before', { gracePeriodSeconds: 0 });
      store.create(r, 'cn', pod('missed', { nodeName: 'node-9' }));
      for (let i = 0; i < 6; i++)
        store.patch(r, 'cn', 'missed', 'merge', { metadata: { labels: { n: String(i) } } });
      await eventually(
        () => lists === 2 && pods.get('missed', 'cn')?.metadata?.labels?.['n'] === '5',
        10000,
        'relist after 410',
      );
      assert.ok(
        events.includes('delete before'),
        `the relist reports the pod deleted meanwhile: ${events.join(', ')}`,
      );
      assert.ok(events.includes('add missed'));
      assert.equal(pods.get('before', 'cn'), undefined);
    } finally {
      await pods.stop();
      await namespaces.stop();
    }
  });
});
