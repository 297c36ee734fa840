/** The informer logic of istio-cni §3.3, event by event, against a recording dataplane. */
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import { DataplaneError } from '../../src/agent/errors.js';
import { type AgentEvent, type ClusterView, Reconciler } from '../../src/agent/reconciler.js';
import { DEFAULT_ENABLEMENT_SELECTORS } from '../../src/cni/selector.js';
import { Counter, Registry } from '../../src/runtime/metrics.js';

const MODE = 'istio.io/dataplane-mode';
const ANN = 'ambient.istio.io/redirection';

type Call =
  | { op: 'add'; pod: string; ips: string[]; ipsOfPodArg: string[] }
  | { op: 'remove'; pod: string; isDelete: boolean; ips: string[] }
  | { op: 'probe'; pod: string; ips: string[] };

function mkPod(
  name: string,
  o: {
    ns?: string;
    labels?: Record<string, string>;
    ann?: string;
    ips?: string[];
    phase?: string;
    hostNetwork?: boolean;
    uid?: string;
  } = {},
): V1Pod {
  return {
    metadata: {
      name,
      namespace: o.ns ?? 'mesh',
      uid: o.uid ?? `uid-${name}`,
      labels: o.labels ?? {},
      annotations: o.ann ? { [ANN]: o.ann } : {},
    },
    spec: { containers: [], hostNetwork: o.hostNetwork ?? false },
    status: { phase: o.phase ?? 'Running', podIPs: (o.ips ?? ['10.0.0.5']).map((ip) => ({ ip })) },
  };
}
const mkNs = (name: string, labels: Record<string, string> = {}): V1Namespace => ({
  metadata: { name, labels },
});
const ipsOf = (p: V1Pod) => (p.status?.podIPs ?? []).map((x) => x.ip);

let pods: Map<string, V1Pod>;
let namespaces: Map<string, V1Namespace>;
let calls: Call[];
let queued: AgentEvent[];
let failAdd: Error | undefined;
let failRemove: Error | undefined;
let registry: Registry;
let r: Reconciler;

const view: ClusterView = {
  pod: (ns, name) => pods.get(`${ns}/${name}`),
  namespace: (name) => namespaces.get(name),
  podsIn: (ns) => [...pods.values()].filter((p) => p.metadata?.namespace === ns),
};
const put = (...list: V1Pod[]) => {
  for (const p of list) pods.set(`${p.metadata!.namespace}/${p.metadata!.name}`, p);
};

beforeEach(() => {
  pods = new Map();
  namespaces = new Map([
    ['mesh', mkNs('mesh', { [MODE]: 'ambient' })],
    ['plain', mkNs('plain')],
    ['kube-system', mkNs('kube-system', { [MODE]: 'ambient' })],
  ]);
  calls = [];
  queued = [];
  failAdd = undefined;
  failRemove = undefined;
  registry = new Registry();
  r = new Reconciler({
    view,
    selection: { selectors: DEFAULT_ENABLEMENT_SELECTORS, excludeNamespaces: ['kube-system'] },
    systemNamespace: 'istio-system',
    enqueue: (e) => queued.push(e),
    events: new Counter({
      name: 'nodeagent_reconcile_events_total',
      help: 'h',
      labelNames: ['type'],
      registers: [registry],
    }),
    dataplane: {
      async addPodToMesh(pod, ips) {
        calls.push({ op: 'add', pod: pod.metadata!.name!, ips: [...ips], ipsOfPodArg: ipsOf(pod) });
        if (failAdd) throw failAdd;
      },
      async removePodFromMesh(pod, isDelete) {
        calls.push({ op: 'remove', pod: pod.metadata!.name!, isDelete, ips: ipsOf(pod) });
        if (failRemove) throw failRemove;
      },
      async syncHostProbeIps(pod, ips) {
        calls.push({ op: 'probe', pod: pod.metadata!.name!, ips: [...ips] });
      },
    },
  });
});

const update = (old: V1Pod, pod: V1Pod): AgentEvent => ({ type: 'pod-update', old, pod });

describe('informer logic', () => {
  it('labelling a namespace fans out its pods (not ztunnel, not other namespaces) and enrolls each exactly once', async () => {
    const a = mkPod('a', { ns: 'plain' });
    const b = mkPod('b', { ns: 'plain', ips: ['10.0.0.6', 'fd00::6'] });
    const other = mkPod('x', { ns: 'mesh' });
    put(a, b, other);
    const before = mkNs('plain');
    namespaces.set('plain', mkNs('plain', { [MODE]: 'ambient' }));
    await r.handle({ type: 'ns-update', old: before, ns: namespaces.get('plain')! });
    assert.deepEqual(
      queued.map((e) => e.type === 'pod-update' && e.pod.metadata!.name),
      ['a', 'b'],
    );
    for (const e of queued.splice(0)) await r.handle(e);
    assert.deepEqual(calls, [
      { op: 'add', pod: 'a', ips: ['10.0.0.5'], ipsOfPodArg: ['10.0.0.5'] },
      { op: 'add', pod: 'b', ips: ['10.0.0.6', 'fd00::6'], ipsOfPodArg: ['10.0.0.6', 'fd00::6'] },
    ]);
  });

  it('a namespace update that does not flip the selector fans out nothing', async () => {
    put(mkPod('a'));
    await r.handle({
      type: 'ns-update',
      old: namespaces.get('mesh')!,
      ns: mkNs('mesh', { [MODE]: 'ambient', team: 'x' }),
    });
    assert.equal(queued.length, 0);
  });

  it('namespace Add fans out every pod except ztunnel pods', async () => {
    namespaces.set('istio-system', mkNs('istio-system'));
    put(
      mkPod('zt', { ns: 'istio-system', labels: { app: 'ztunnel' } }),
      mkPod('other', { ns: 'istio-system' }),
    );
    await r.handle({ type: 'ns-add', ns: namespaces.get('istio-system')! });
    assert.deepEqual(
      queued.map((e) => e.type === 'pod-update' && e.pod.metadata!.name),
      ['other'],
    );
  });

  it('a pod without IPs is not added (waits for a later update)', async () => {
    const p = mkPod('a', { ips: [] });
    put(p);
    await r.handle(update(p, p));
    assert.deepEqual(calls, []);
  });

  it('hostNetwork and sidecar pods are never added', async () => {
    const h = mkPod('h', { hostNetwork: true });
    const s = mkPod('s');
    s.metadata!.annotations!['sidecar.istio.io/status'] = '{}';
    put(h, s);
    await r.handle(update(h, h));
    await r.handle(update(s, s));
    assert.deepEqual(calls, []);
  });

  it('a retryable add error is thrown (the queue retries); a non-retryable one is dropped', async () => {
    const p = mkPod('a');
    put(p);
    failAdd = new DataplaneError('AGENT_ZTUNNEL_FAILED', 'no ztunnel', { retryable: true });
    await assert.rejects(r.handle(update(p, p)), { code: 'AGENT_ZTUNNEL_FAILED' });
    failAdd = new DataplaneError('AGENT_NETNS_NOT_FOUND', 'gone', { retryable: false });
    await r.handle(update(p, p));
    assert.equal(calls.length, 2);
  });

  it('a pending pod is added again even though it looks enrolled-ish', async () => {
    const p = mkPod('a', { ann: 'pending' });
    put(p);
    await r.handle(update(p, p));
    assert.deepEqual(
      calls.map((c) => c.op),
      ['add'],
    );
  });

  it('an enrolled pod that is still selected is left alone; a stale event copy without the annotation does not re-add', async () => {
    const cur = mkPod('a', { ann: 'enabled' });
    put(cur);
    const stale = mkPod('a');
    await r.handle(update(stale, stale));
    assert.deepEqual(calls, []);
  });

  it('namespace unlabelled or pod label none -> removed (not as a delete)', async () => {
    const p = mkPod('a', { ann: 'enabled' });
    put(p);
    namespaces.set('mesh', mkNs('mesh'));
    await r.handle(update(p, p));
    namespaces.set('mesh', mkNs('mesh', { [MODE]: 'ambient' }));
    const none = mkPod('b', { ann: 'enabled', labels: { [MODE]: 'none' } });
    put(none);
    await r.handle(update(none, none));
    assert.deepEqual(calls, [
      { op: 'remove', pod: 'a', isDelete: false, ips: ['10.0.0.5'] },
      { op: 'remove', pod: 'b', isDelete: false, ips: ['10.0.0.5'] },
    ]);
  });

  it('a failed removal is thrown so the queue retries it', async () => {
    const p = mkPod('a', { ann: 'enabled', labels: { [MODE]: 'none' } });
    put(p);
    failRemove = new Error('iptables busy');
    await assert.rejects(r.handle(update(p, p)), /iptables busy/);
  });

  it('a terminal Job pod is removed once as a delete, with the previous copy (which still has IPs)', async () => {
    const running = mkPod('job', { ann: 'enabled' });
    const done = mkPod('job', { ann: 'enabled', phase: 'Succeeded', ips: [] });
    put(done);
    await r.handle(update(running, done));
    assert.deepEqual(calls, [{ op: 'remove', pod: 'job', isDelete: true, ips: ['10.0.0.5'] }]);
    // Annotation gone after removal: later terminal updates do nothing.
    const after = mkPod('job', { phase: 'Succeeded', ips: [] });
    put(after);
    await r.handle(update(done, after));
    assert.equal(calls.length, 1);
    // The pod runs again (restartPolicy): added again.
    const again = mkPod('job', { phase: 'Running' });
    put(again);
    await r.handle(update(after, again));
    assert.deepEqual(calls.at(-1), { op: 'add', pod: 'job', ips: ['10.0.0.5'], ipsOfPodArg: ['10.0.0.5'] });
  });

  it("probe IPs are re-asserted only when an enrolled pod's IPs change", async () => {
    const old = mkPod('a', { ann: 'enabled' });
    put(old);
    await r.handle(update(old, old));
    const moved = mkPod('a', { ann: 'enabled', ips: ['10.0.0.9'] });
    put(moved);
    await r.handle(update(old, moved));
    assert.deepEqual(calls, [{ op: 'probe', pod: 'a', ips: ['10.0.0.9'] }]);
  });

  it('an update for a pod that vanished from the cache (or was re-created with another UID) is skipped', async () => {
    const p = mkPod('a');
    await r.handle(update(p, p));
    put(mkPod('a', { uid: 'uid-new' }));
    await r.handle(update(p, p));
    assert.deepEqual(calls, []);
  });

  it('an event whose namespace is unknown is dropped', async () => {
    const p = mkPod('a', { ns: 'ghost' });
    put(p);
    await r.handle(update(p, p));
    assert.deepEqual(calls, []);
  });

  it('Delete removes enrolled, pending or selected pods (also when the pod and its namespace are gone) and nothing else', async () => {
    await r.handle({ type: 'pod-delete', pod: mkPod('enrolled', { ns: 'ghost', ann: 'enabled' }) });
    await r.handle({ type: 'pod-delete', pod: mkPod('pending', { ns: 'plain', ann: 'pending' }) });
    await r.handle({ type: 'pod-delete', pod: mkPod('selected') });
    await r.handle({ type: 'pod-delete', pod: mkPod('bystander', { ns: 'plain' }) });
    assert.deepEqual(
      calls.map((c) => c.op === 'remove' && `${c.pod}:${c.isDelete}`),
      ['enrolled:true', 'pending:true', 'selected:true'],
    );
  });

  it('excluded namespace: not enrolled, an enrolled pod is removed, delete still handled, other namespaces unaffected', async () => {
    const fresh = mkPod('fresh', { ns: 'kube-system' });
    const old = mkPod('old', { ns: 'kube-system', ann: 'enabled' });
    const meshPod = mkPod('m');
    put(fresh, old, meshPod);
    await r.handle(update(fresh, fresh));
    await r.handle(update(old, old));
    await r.handle({ type: 'pod-delete', pod: old });
    await r.handle(update(meshPod, meshPod));
    assert.deepEqual(
      calls.map((c) => `${c.op}:${c.pod}`),
      ['remove:old', 'remove:old', 'add:m'],
    );
  });

  it('pod Add is a no-op; every event is counted by type', async () => {
    const p = mkPod('a');
    put(p);
    await r.handle({ type: 'pod-add', pod: p });
    await r.handle(update(p, p));
    await r.handle({ type: 'pod-delete', pod: mkPod('zz', { ns: 'plain' }) });
    await r.handle({ type: 'ns-add', ns: mkNs('empty') });
    assert.deepEqual(
      calls.map((c) => c.op),
      ['add'],
    );
    const text = await registry.metrics();
    assert.match(text, /nodeagent_reconcile_events_total\{type="add"\} 2/);
    assert.match(text, /nodeagent_reconcile_events_total\{type="update"\} 1/);
    assert.match(text, /nodeagent_reconcile_events_total\{type="delete"\} 1/);
  });
});
