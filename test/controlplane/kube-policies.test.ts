/**
 * AuthorizationPolicies from the API server over delta xDS: the control plane starts before the CRD
 * exists and picks the policies up once it does; a ztunnel's WorkloadStore gets namespace, mesh-wide
 * (root namespace) and workload-selector policies, the selector ones listed on the selected workloads
 * only; an update or deletion reaches it; policy-file policies are served beside them; what ztunnel
 * cannot enforce is logged.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { WorkloadStore as Store } from '../../src/discovery/store.js';
import { WorkloadStore } from '../../src/discovery/store.js';
import { XdsClient } from '../../src/discovery/xds-client.js';
import { CRD_RESOURCE } from '../../src/lab/apiserver/resources.js';
import { AUTHORIZATION_POLICY_CRD } from '../../src/lab/cluster/istio-crds.js';
import { setLogSink } from '../../src/runtime/log.js';
import { eventually, Harness } from './helpers.js';

const FILE_POLICIES = `policies:
  - name: from-file
    namespace: mesh
    scope: Namespace
    action: Allow
    rules: [[[{ destinationPorts: [7000] }]]]
`;

describe('control plane: AuthorizationPolicies from the API server', () => {
  let h: Harness;
  let dir = '';
  let client: XdsClient;
  const store = new WorkloadStore();
  const logLines: string[] = [];

  const apType = () => h.api.store.findResource('security.istio.io', 'v1', 'authorizationpolicies')!;
  const apply = (namespace: string, name: string, spec: unknown): void => {
    const existing = h.api.store.find(apType(), namespace, name);
    if (existing) h.api.store.update(apType(), namespace, name, { ...existing, spec });
    else h.api.store.create(apType(), namespace, { metadata: { name }, spec });
  };
  const workload = (s: Store, ns: string, name: string) =>
    s.workloads.find((w) => w.namespace === ns && w.name === name);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ambit-cp-ap-'));
    const policiesFile = join(dir, 'policies.yaml');
    writeFileSync(policiesFile, FILE_POLICIES);
    setLogSink({ write: (line: string) => void logLines.push(line) });
    h = await Harness.start({ policiesFile });
    h.serviceAccount('istio-system', 'ztunnel');
    const token = await h.token('istio-system', 'ztunnel');
    writeFileSync(join(dir, 'token'), token, { mode: 0o600 });
    h.pod({ namespace: 'mesh', name: 'httpbin', ip: '10.9.1.2', labels: { app: 'httpbin' } });
    h.pod({ namespace: 'mesh', name: 'httpbin2', ip: '10.9.1.3', labels: { app: 'httpbin2' } });
    h.pod({ namespace: 'other', name: 'client', ip: '10.9.2.2', labels: { app: 'httpbin' } });
    client = new XdsClient({
      address: h.address,
      rootPem: h.cp.rootPem,
      token: join(dir, 'token'),
      store,
      node: { id: 'ztunnel~10.9.0.2~ztunnel-a.istio-system~istio-system.svc.cluster.local', metadata: {} },
    });
    client.start();
    await client.ready;
  });
  after(async () => {
    setLogSink(process.stdout);
    client.close();
    await h.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('without the CRD the control plane serves the file policies and says why it has no cluster ones', async () => {
    await eventually(() => store.policies.some((p) => p.name === 'from-file'), undefined, 'the file policy');
    await eventually(
      () => logLines.some((l) => /WARN .*watch failed, restarting resource=authorizationpolicies/.test(l)),
      undefined,
      'the watch failure logged',
    );
  });

  it('namespace, mesh-wide and selector policies reach ztunnel; a selector policy is on the selected pods only', async () => {
    h.api.store.create(CRD_RESOURCE, undefined, AUTHORIZATION_POLICY_CRD);
    apply('mesh', 'ns-wide', { action: 'ALLOW', rules: [{ from: [{ source: { namespaces: ['mesh'] } }] }] });
    apply('istio-system', 'mesh-wide', {
      action: 'DENY',
      rules: [{ from: [{ source: { namespaces: ['evil'] } }] }],
    });
    apply('mesh', 'only-httpbin', {
      selector: { matchLabels: { app: 'httpbin' } },
      action: 'DENY',
      rules: [{}],
    });
    apply('istio-system', 'root-selector', { selector: { matchLabels: { app: 'httpbin2' } }, rules: [{}] });
    await eventually(() => store.policies.length === 5, undefined, 'four cluster policies and the file one');
    const scopes = Object.fromEntries(store.policies.map((p) => [`${p.namespace}/${p.name}`, p.scope]));
    assert.deepEqual(scopes, {
      'mesh/from-file': 'Namespace',
      'mesh/ns-wide': 'Namespace',
      'istio-system/mesh-wide': 'Global',
      'mesh/only-httpbin': 'WorkloadSelector',
      'istio-system/root-selector': 'WorkloadSelector',
    });
    await eventually(
      () => workload(store, 'mesh', 'httpbin')?.authorizationPolicies.length === 1,
      undefined,
      'httpbin lists its selector policy',
    );
    assert.deepEqual(workload(store, 'mesh', 'httpbin')?.authorizationPolicies, ['mesh/only-httpbin']);
    assert.deepEqual(workload(store, 'mesh', 'httpbin2')?.authorizationPolicies, [
      'istio-system/root-selector',
    ]);
    assert.deepEqual(
      workload(store, 'other', 'client')?.authorizationPolicies,
      [],
      'same label, other namespace',
    );
    const names = (ns: string, name: string) =>
      store
        .policiesFor(workload(store, ns, name)!)
        .map((p) => p.name)
        .sort();
    assert.deepEqual(names('mesh', 'httpbin'), ['from-file', 'mesh-wide', 'ns-wide', 'only-httpbin']);
    assert.deepEqual(names('mesh', 'httpbin2'), ['from-file', 'mesh-wide', 'ns-wide', 'root-selector']);
    assert.deepEqual(names('other', 'client'), ['mesh-wide']);
  });

  it('a changed selector moves the policy; a deleted policy is withdrawn', async () => {
    apply('mesh', 'only-httpbin', {
      selector: { matchLabels: { app: 'httpbin2' } },
      action: 'DENY',
      rules: [{}],
    });
    await eventually(
      () => workload(store, 'mesh', 'httpbin')?.authorizationPolicies.length === 0,
      undefined,
      'the policy leaves httpbin',
    );
    assert.deepEqual(workload(store, 'mesh', 'httpbin2')?.authorizationPolicies, [
      'istio-system/root-selector',
      'mesh/only-httpbin',
    ]);
    h.api.store.delete(apType(), 'mesh', 'only-httpbin');
    await eventually(() => !store.policies.some((p) => p.name === 'only-httpbin'), undefined, 'withdrawn');
    await eventually(
      () => workload(store, 'mesh', 'httpbin2')?.authorizationPolicies.length === 1,
      undefined,
      'and off httpbin2',
    );
  });

  it('HTTP attributes: an ALLOW loses its HTTP rules, a DENY keeps its L4 part, each logged once; AUDIT is skipped', async () => {
    apply('mesh', 'l7-allow', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] });
    apply('mesh', 'l7-deny', {
      action: 'DENY',
      rules: [{ to: [{ operation: { ports: ['8000'], paths: ['/admin'] } }] }],
    });
    apply('mesh', 'audit', { action: 'AUDIT', rules: [{}] });
    await eventually(
      () =>
        store.policies.some((p) => p.name === 'l7-allow') && store.policies.some((p) => p.name === 'l7-deny'),
      undefined,
      'the L7 policies',
    );
    assert.deepEqual(
      store.policies.find((p) => p.name === 'l7-allow')?.rules,
      [],
      'ALLOW: nothing left to allow',
    );
    assert.deepEqual(
      store.policies.find((p) => p.name === 'l7-deny')?.rules[0]?.[0]?.[0]?.destinationPorts,
      [8000],
    );
    assert.ok(!store.policies.some((p) => p.name === 'audit'));
    const logged = (re: RegExp) => logLines.filter((l) => re.test(l));
    await eventually(() => logged(/policy=mesh\/audit/).length > 0, undefined, 'the AUDIT policy logged');
    assert.match(
      logged(/policy=mesh\/l7-allow/)[0] ?? '',
      /WARN ambit::controlplane::kube: authorization policy applied with changes .*found: methods.*rules matching HTTP attributes are omitted/,
    );
    assert.match(
      logged(/policy=mesh\/l7-deny/)[0] ?? '',
      /found: paths.*DENY policy with HTTP attributes is enforced without the HTTP rules/,
    );
    assert.match(
      logged(/policy=mesh\/audit/)[0] ?? '',
      /authorization policy not applied .*does not support the AUDIT action/,
    );
    // A rebuild for an unrelated change does not log them again.
    h.pod({ namespace: 'mesh', name: 'late', ip: '10.9.1.9' });
    await eventually(() => workload(store, 'mesh', 'late'), undefined, 'the new pod');
    assert.equal(logged(/policy=mesh\/l7-allow/).length, 1);
  });
});
