/**
 * The Helm chart (deploy/charts/ambit) with the real Helm (scripts/helm, built from the Go module proxy
 * when missing): `helm lint --strict` passes, the committed deploy/ambit.yaml is exactly what the
 * chart renders with its defaults, and the rendered objects are wired to what each ambit command reads
 * (its flags are accepted by the command's own parser, names match the code's constants).
 * Run: npm run build && node scripts/run-tests.mjs k8s/chart
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { parseAgentConfig } from '../../src/agent/config.js';
import { AGENT_POD_NAME_PREFIX, PLUGIN_TYPE } from '../../src/cni/names.js';
import { DEFAULT_AGENT_RUN_DIR } from '../../src/node/contract.js';
import { parseZtunnelConfig } from '../../src/ztunnel/config.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const CHART = join(ROOT, 'deploy', 'charts', 'ambit');
const MANIFEST = join(ROOT, 'deploy', 'ambit.yaml');
const AMBIT = join(ROOT, 'bin', 'ambit');

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects are checked field by field below.
type Obj = any;

let helm: string;

function run(cmd: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The release's objects; `hooks`: only Helm's hook objects (the uninstall Job and its RBAC). */
function template(namespace: string, set: string[] = [], hooks = false): Obj[] {
  const r = run(helm, [
    'template',
    'ambit',
    CHART,
    '--namespace',
    namespace,
    ...(hooks ? ['--show-only', 'templates/cni/uninstall-hook.yaml'] : ['--no-hooks']),
    ...set.flatMap((s) => ['--set', s]),
  ]);
  assert.equal(r.status, 0, `helm template failed: ${r.stderr}`);
  return docs(r.stdout);
}

function docs(text: string): Obj[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS())
    .filter((o) => o !== null);
}

const find = (objs: Obj[], kind: string, name: string): Obj => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} is rendered`);
  return o;
};
const container = (podOwner: Obj, name: string): Obj => {
  const c = podOwner.spec.template.spec.containers.find((x: Obj) => x.name === name);
  assert.ok(c, `${podOwner.metadata.name} has container ${name}`);
  return c;
};
const envOf = (c: Obj): Record<string, string> =>
  Object.fromEntries((c.env ?? []).filter((e: Obj) => 'value' in e).map((e: Obj) => [e.name, e.value]));
const mountPath = (c: Obj, volume: string): string | undefined =>
  c.volumeMounts?.find((m: Obj) => m.name === volume)?.mountPath;

describe('Helm chart deploy/charts/ambit', () => {
  before(() => {
    // Builds Helm into its cache the first time (minutes); a cache hit takes well under a second.
    helm = execFileSync(join(ROOT, 'scripts', 'helm'), ['--ambit-bin'], { encoding: 'utf8' }).trim();
  });

  it('passes helm lint --strict, with the defaults and with every switch flipped', () => {
    for (const set of [
      [],
      [
        'cni.privileged=true',
        'ztunnel.privileged=true',
        'global.nativeNftables=true',
        'ambient.enableAmbientDetectionRetry=true',
        'global.imagePullSecrets={regcred}',
        'pilot.servingIps={10.96.0.12}',
        'pilot.serviceClusterIP=10.96.0.15',
      ],
    ]) {
      const r = run(helm, [
        'lint',
        '--strict',
        CHART,
        '--namespace',
        'istio-system',
        ...set.flatMap((s) => ['--set', s]),
      ]);
      assert.equal(r.status, 0, `helm lint ${set.join(' ')}:\n${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  it('deploy/ambit.yaml is the chart rendered with its defaults (scripts/render-manifest)', () => {
    const committed = readFileSync(MANIFEST, 'utf8');
    const r = run(join(ROOT, 'scripts', 'render-manifest'), ['--stdout']);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(committed === r.stdout, 'deploy/ambit.yaml is stale: run npm run render-manifest');
    // Object by object too: a Namespace, then exactly what `helm template` gives.
    const [ns, ...rest] = docs(committed);
    assert.deepEqual(ns, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } });
    assert.deepEqual(rest, template('istio-system'));
  });

  it("renders Istio's set of objects, named as the code expects", () => {
    const objs = template('istio-system');
    const list = objs.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    assert.deepEqual(list, [
      'ClusterRole/ambit-cni',
      'ClusterRole/ambit-cni-ambient',
      'ClusterRole/istiod-clusterrole-istio-system',
      'ClusterRoleBinding/ambit-cni',
      'ClusterRoleBinding/ambit-cni-ambient',
      'ClusterRoleBinding/istiod-clusterrole-istio-system',
      'ConfigMap/ambit-cni-config',
      'CustomResourceDefinition/authorizationpolicies.security.istio.io',
      'DaemonSet/ambit-cni-node',
      'DaemonSet/ztunnel',
      'Deployment/istiod',
      'Role/ambit-cni',
      'Role/istiod',
      'RoleBinding/ambit-cni',
      'RoleBinding/istiod',
      'Service/istiod',
      'ServiceAccount/ambit-cni',
      'ServiceAccount/istiod',
      'ServiceAccount/ztunnel',
    ]);
    // The plugin lets the agent's own pods through by name.
    assert.equal(`${find(objs, 'DaemonSet', 'ambit-cni-node').metadata.name}-`, AGENT_POD_NAME_PREFIX);
    for (const o of objs) {
      if (o.metadata.namespace !== undefined) assert.equal(o.metadata.namespace, 'istio-system');
      assert.equal(o.metadata.labels['app.kubernetes.io/part-of'], 'ambit');
      assert.equal(o.metadata.labels['app.kubernetes.io/instance'], 'ambit');
    }
  });

  it('Chart.yaml appVersion is the package version (the default image tag)', () => {
    const chart = parseYaml(readFileSync(join(CHART, 'Chart.yaml'), 'utf8'));
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    assert.equal(chart.appVersion, pkg.version);
    const ds = find(template('istio-system'), 'DaemonSet', 'ztunnel');
    assert.equal(container(ds, 'istio-proxy').image, `localhost/ambit/ambit:${pkg.version}`);
  });

  it("ztunnel: its own pod with Istio's capabilities, token, readiness and surge-first rollout", () => {
    const ds = find(template('istio-system'), 'DaemonSet', 'ztunnel');
    const pod = ds.spec.template.spec;
    const c = container(ds, 'istio-proxy');
    assert.equal(pod.hostNetwork, undefined, 'not host network');
    assert.equal(pod.serviceAccountName, 'ztunnel');
    assert.equal(pod.priorityClassName, 'system-node-critical');
    assert.equal(pod.terminationGracePeriodSeconds, 30);
    assert.equal(ds.spec.template.metadata.labels['istio.io/dataplane-mode'], 'none');
    assert.deepEqual(ds.spec.updateStrategy, {
      type: 'RollingUpdate',
      rollingUpdate: { maxSurge: 1, maxUnavailable: 0 },
    });
    assert.equal(c.securityContext.privileged, false);
    assert.deepEqual(c.securityContext.capabilities, {
      add: ['NET_ADMIN', 'SYS_ADMIN', 'NET_RAW'],
      drop: ['ALL'],
    });
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/healthz/ready', port: 15021 });
    const token = pod.volumes.find((v: Obj) => v.name === 'istio-token');
    assert.deepEqual(token.projected.sources, [
      { serviceAccountToken: { audience: 'istio-ca', expirationSeconds: 43200, path: 'istio-token' } },
    ]);
    assert.equal(mountPath(c, 'istio-token'), '/var/run/secrets/tokens');
    assert.equal(mountPath(c, 'cni-ztunnel-sock-dir'), '/var/run/ztunnel');
    assert.equal(
      pod.volumes.find((v: Obj) => v.name === 'istiod-ca-cert').configMap.name,
      'istio-ca-root-cert',
    );
    assert.equal(mountPath(c, 'istiod-ca-cert'), '/var/run/secrets/istio');
    const fieldRefs = Object.fromEntries(
      c.env.filter((e: Obj) => e.valueFrom).map((e: Obj) => [e.name, e.valueFrom.fieldRef.fieldPath]),
    );
    assert.deepEqual(fieldRefs, {
      POD_NAME: 'metadata.name',
      POD_NAMESPACE: 'metadata.namespace',
      NODE_NAME: 'spec.nodeName',
      INSTANCE_IP: 'status.podIP',
    });

    // What `ambit ztunnel` makes of that environment.
    const env = {
      ...envOf(c),
      POD_NAME: 'ztunnel-x',
      POD_NAMESPACE: 'istio-system',
      NODE_NAME: 'n1',
      INSTANCE_IP: '10.0.0.5',
    };
    assert.deepEqual(c.args, ['ztunnel']);
    const cfg = parseZtunnelConfig([], env);
    assert.equal(cfg.caAddress, 'istiod.istio-system.svc:15012');
    assert.equal(cfg.xdsAddress, 'istiod.istio-system.svc:15012');
    assert.equal(cfg.caRootCa, '/var/run/secrets/istio/root-cert.pem');
    assert.equal(cfg.authToken, `${mountPath(c, 'istio-token')}/istio-token`);
    assert.equal(cfg.inpodUds, '/var/run/ztunnel/ztunnel.sock');
    assert.equal(cfg.trustDomain, 'cluster.local');
    assert.equal(cfg.clusterId, 'Kubernetes');
    assert.equal(cfg.drainDeadlineMs, 25_000, 'drains for the grace period minus 5 s');
    assert.equal(cfg.nodeName, 'n1');
  });

  it('node agent: host network, CNI dirs, ZDS socket, host /proc, least capabilities, readiness', () => {
    const objs = template('istio-system');
    const ds = find(objs, 'DaemonSet', 'ambit-cni-node');
    const pod = ds.spec.template.spec;
    const agent = container(ds, 'node-agent');
    const installer = container(ds, 'install-cni');
    assert.equal(pod.hostNetwork, true);
    assert.equal(pod.serviceAccountName, 'ambit-cni');
    assert.equal(pod.priorityClassName, 'system-node-critical');
    assert.equal(ds.spec.template.metadata.labels['istio.io/dataplane-mode'], 'none');
    const hostPath = (name: string) => pod.volumes.find((v: Obj) => v.name === name).hostPath.path;
    assert.equal(hostPath('cni-bin-dir'), '/opt/cni/bin');
    assert.equal(hostPath('cni-net-dir'), '/etc/cni/net.d');
    assert.equal(hostPath('cni-socket-dir'), DEFAULT_AGENT_RUN_DIR);
    assert.equal(hostPath('cni-ztunnel-sock-dir'), '/var/run/ztunnel');
    assert.equal(hostPath('cni-host-procfs'), '/proc');
    assert.equal(mountPath(agent, 'cni-host-procfs'), '/host/proc');
    const netns = agent.volumeMounts.find((m: Obj) => m.name === 'cni-netns-dir');
    assert.deepEqual(netns, {
      name: 'cni-netns-dir',
      mountPath: '/var/run/netns',
      mountPropagation: 'HostToContainer',
    });
    assert.equal(agent.securityContext.privileged, false);
    assert.deepEqual(agent.securityContext.capabilities, {
      add: ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN', 'SYS_PTRACE'],
      drop: ['ALL'],
    });
    assert.deepEqual(installer.securityContext.capabilities, { drop: ['ALL'] });
    assert.deepEqual(agent.readinessProbe.httpGet, { path: '/readyz', port: 8000 });

    // What `ambit agent` makes of its ConfigMap plus the downward API.
    const data = find(objs, 'ConfigMap', 'ambit-cni-config').data;
    assert.deepEqual(agent.envFrom, [{ configMapRef: { name: 'ambit-cni-config' } }]);
    assert.deepEqual(agent.args, ['agent']);
    const cfg = parseAgentConfig([], { ...data, NODE_NAME: 'n1' });
    assert.equal(cfg.nodeName, 'n1');
    assert.equal(cfg.runDir, mountPath(agent, 'cni-socket-dir'));
    assert.equal(cfg.zdsSocket, `${mountPath(agent, 'cni-ztunnel-sock-dir')}/ztunnel.sock`);
    assert.equal(cfg.procRoot, '/host/proc');
    assert.equal(cfg.hostNetns, null, 'host rules go into its own (the host) netns');
    assert.equal(cfg.systemNamespace, 'istio-system');
    assert.deepEqual(cfg.excludeNamespaces, ['kube-system']);
    assert.equal(cfg.backend, 'iptables');
    assert.equal(cfg.inbound, 'tproxy');
    assert.equal(cfg.reconcileOnStartup, true);
    assert.equal(cfg.selectors.length, 2);
    // On SIGTERM both read their own DaemonSet (upgrade or uninstall): they know its namespace and may get it.
    const podNamespace = agent.env.find((e: Obj) => e.name === 'POD_NAMESPACE');
    assert.deepEqual(podNamespace.valueFrom, { fieldRef: { fieldPath: 'metadata.namespace' } });
    assert.equal(
      parseAgentConfig([], { ...data, NODE_NAME: 'n1', POD_NAMESPACE: 'istio-system' }).podNamespace,
      'istio-system',
    );
    assert.deepEqual(find(objs, 'Role', 'ambit-cni').rules, [
      { apiGroups: ['apps'], resources: ['daemonsets'], resourceNames: ['ambit-cni-node'], verbs: ['get'] },
    ]);
    assert.deepEqual(find(objs, 'RoleBinding', 'ambit-cni').subjects, [
      { kind: 'ServiceAccount', name: 'ambit-cni', namespace: 'istio-system' },
    ]);
    assert.ok(pod.terminationGracePeriodSeconds >= 30, 'time to take the pods of a node out of the mesh');

    // The installer's flags are all ones `ambit cni-install` knows (its parser rejects others).
    assert.equal(installer.args[0], 'cni-install');
    const r = run(AMBIT, [...installer.args, '--help']);
    assert.equal(r.status, 0, `ambit ${installer.args.join(' ')}: ${r.stderr}`);
    assert.ok(installer.args.includes(`--run-dir=${mountPath(installer, 'cni-socket-dir')}`));
    assert.ok(installer.args.includes(`--cni-conf-dir=${mountPath(installer, 'cni-net-dir')}`));
    assert.ok(installer.args.includes(`--cni-bin-dir=${mountPath(installer, 'cni-bin-dir')}`));
    assert.ok(installer.args.includes('--pod-namespace=istio-system'));
    assert.match(r.stdout, new RegExp(PLUGIN_TYPE));
  });

  it('helm uninstall: a pre-delete hook deletes the node agents first, with the least RBAC', () => {
    const hooks = template('istio-system', [], true);
    assert.deepEqual(hooks.map((o) => `${o.kind}/${o.metadata.name}`).sort(), [
      'Job/ambit-cni-uninstall',
      'Role/ambit-cni-uninstall',
      'RoleBinding/ambit-cni-uninstall',
      'ServiceAccount/ambit-cni-uninstall',
    ]);
    for (const o of hooks) {
      assert.equal(o.metadata.annotations['helm.sh/hook'], 'pre-delete');
      assert.equal(
        o.metadata.annotations['helm.sh/hook-delete-policy'],
        'before-hook-creation,hook-succeeded',
      );
    }
    const weight = (kind: string) =>
      Number(find(hooks, kind, 'ambit-cni-uninstall').metadata.annotations['helm.sh/hook-weight']);
    assert.ok(
      weight('ServiceAccount') < weight('Job') && weight('Role') < weight('Job'),
      'RBAC before the Job',
    );
    assert.deepEqual(find(hooks, 'Role', 'ambit-cni-uninstall').rules, [
      {
        apiGroups: ['apps'],
        resources: ['daemonsets'],
        resourceNames: ['ambit-cni-node'],
        verbs: ['get', 'delete'],
      },
      { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
    ]);
    const job = find(hooks, 'Job', 'ambit-cni-uninstall');
    const c = job.spec.template.spec.containers[0];
    assert.equal(job.spec.template.spec.serviceAccountName, 'ambit-cni-uninstall');
    assert.equal(job.spec.template.metadata.labels['istio.io/dataplane-mode'], 'none');
    assert.deepEqual(c.args, ['cni-uninstall', '--namespace=istio-system', '--timeout=120']);
    const r = run(AMBIT, [...c.args, '--help']);
    assert.equal(r.status, 0, `ambit ${c.args.join(' ')}: ${r.stderr}`);
    assert.equal(c.securityContext.runAsNonRoot, true);
    // Switched off: no hook, and the manifest without hooks never has one.
    assert.equal(
      template('istio-system', ['cni.uninstall.unmeshPods=false'], false).length,
      template('istio-system').length,
    );
    const off = run(helm, [
      'template',
      'ambit',
      CHART,
      '-n',
      'istio-system',
      '--set',
      'cni.uninstall.unmeshPods=false',
    ]);
    assert.doesNotMatch(off.stdout, /ambit-cni-uninstall/);
  });

  it('control plane: in-cluster, CA root in istio-ca-secret, the least RBAC', () => {
    const objs = template('istio-system');
    const dep = find(objs, 'Deployment', 'istiod');
    const c = container(dep, 'discovery');
    assert.equal(c.args[0], 'control-plane');
    assert.ok(!c.args.some((a: string) => a.startsWith('--kubeconfig')), 'in-cluster config');
    for (const want of [
      '--listen=[::]:15012',
      '--node-proxy=istio-system/ztunnel',
      '--ca-secret=istio-system/istio-ca-secret',
      '--root-cert-configmap=istio-system/istio-ca-root-cert',
      '--serving-dns=istiod.istio-system.svc',
      '--token-audience=istio-ca',
    ])
      assert.ok(c.args.includes(want), `${want} in ${c.args.join(' ')}`);
    const r = run(AMBIT, [...c.args, '--help']);
    assert.equal(r.status, 0, `ambit ${c.args.join(' ')}: ${r.stderr}`);
    assert.equal(mountPath(c, 'local-ca'), '/var/run/ambit/ca');
    assert.ok(c.args.includes(`--ca-dir=${mountPath(c, 'local-ca')}`));

    const svc = find(objs, 'Service', 'istiod');
    assert.deepEqual(svc.spec.ports, [
      { name: 'https-dns', port: 15012, targetPort: 15012, protocol: 'TCP' },
    ]);
    const podLabels = dep.spec.template.metadata.labels;
    for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(podLabels[k], v);

    const cr = find(objs, 'ClusterRole', 'istiod-clusterrole-istio-system');
    assert.deepEqual(cr.rules, [
      { apiGroups: [''], resources: ['pods', 'services'], verbs: ['get', 'list', 'watch'] },
      {
        apiGroups: ['security.istio.io'],
        resources: ['authorizationpolicies'],
        verbs: ['get', 'list', 'watch'],
      },
      { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
    ]);
    assert.ok(c.args.includes('--root-namespace=istio-system'));
    const role = find(objs, 'Role', 'istiod');
    const named = role.rules.filter((x: Obj) => x.resourceNames).flatMap((x: Obj) => x.resourceNames);
    assert.deepEqual(named.sort(), ['istio-ca-root-cert', 'istio-ca-secret']);
  });

  it('follows the release namespace and the image values everywhere', () => {
    const objs = template('mesh-x', [
      'global.hub=registry.example/ambit',
      'global.tag=dev',
      'global.imagePullPolicy=Never',
    ]);
    const ztunnel = container(find(objs, 'DaemonSet', 'ztunnel'), 'istio-proxy');
    assert.equal(envOf(ztunnel).CA_ADDRESS, 'istiod.mesh-x.svc:15012');
    const cp = container(find(objs, 'Deployment', 'istiod'), 'discovery');
    assert.ok(cp.args.includes('--node-proxy=mesh-x/ztunnel'));
    assert.ok(cp.args.includes('--root-namespace=mesh-x'), 'the root namespace follows the release');
    assert.ok(cp.args.includes('--serving-dns=istiod.mesh-x.svc'));
    assert.equal(find(objs, 'ConfigMap', 'ambit-cni-config').data.SYSTEM_NAMESPACE, 'mesh-x');
    assert.ok(
      container(find(objs, 'DaemonSet', 'ambit-cni-node'), 'install-cni').args.includes(
        '--pod-namespace=mesh-x',
      ),
    );
    for (const o of objs.filter((x) => x.spec?.template)) {
      for (const c of o.spec.template.spec.containers) {
        assert.equal(c.image, 'registry.example/ambit/ambit:dev');
        assert.equal(c.imagePullPolicy, 'Never');
      }
    }
  });

  it('pilot.serviceClusterIP: ztunnel finds the control plane without cluster DNS', () => {
    assert.equal(find(template('istio-system'), 'Service', 'istiod').spec.clusterIP, undefined);
    assert.equal(
      find(template('istio-system'), 'DaemonSet', 'ztunnel').spec.template.spec.hostAliases,
      undefined,
    );
    const objs = template('mesh-x', ['pilot.serviceClusterIP=10.96.0.15']);
    assert.equal(find(objs, 'Service', 'istiod').spec.clusterIP, '10.96.0.15');
    const ds = find(objs, 'DaemonSet', 'ztunnel');
    assert.deepEqual(ds.spec.template.spec.hostAliases, [
      { ip: '10.96.0.15', hostnames: ['istiod.mesh-x.svc', 'istiod.mesh-x.svc.cluster.local'] },
    ]);
    // The name ztunnel dials is one of the aliases (and in the serving certificate).
    const host = envOf(container(ds, 'istio-proxy')).CA_ADDRESS!.replace(/:15012$/, '');
    assert.ok(ds.spec.template.spec.hostAliases[0].hostnames.includes(host));
    assert.ok(
      container(find(objs, 'Deployment', 'istiod'), 'discovery').args.includes(`--serving-dns=${host}`),
    );
  });

  it('refuses values ambit cannot honour (values.schema.json)', () => {
    for (const set of [
      'ambient.dnsCapture=maybe',
      'ambient.enabled=false',
      'pilot.unknownKey=1',
      'global.imagePullPolicy=Sometimes',
    ]) {
      const r = run(helm, ['template', 'ambit', CHART, '--set', set]);
      assert.notEqual(r.status, 0, `${set} was accepted`);
    }
  });
});
