/**
 * The seed on real Kubernetes (issue 13, step 4): `helm install` of deploy/charts/ambit on the
 * single-node cluster of scripts/k8s (real kubelet, containerd, CNI bridge chain, kube-proxy), then
 * namespace `ambient-demo` with `sleep` and `httpbin`, labelled istio.io/dataplane-mode=ambient, and on
 * the real pods: the annotation, httpbin's probes passing through the 169.254.7.127 path, ztunnel's
 * listeners in the pod netns, the seed's in-pod ruleset (the doctor's expectation code), sleep→httpbin
 * by pod IP and Service IP, a capture showing only TLS to/from 15008, ztunnel's `inpod` log lines.
 * Then the failure paths: no ztunnel on the node, graceful pod deletion.
 *
 * Needs root and the machine's single cluster (never run two at once):
 *   npm run build && node scripts/run-tests.mjs --k8s k8s/seed
 * Images: scripts/build-image --all, run by the test (dist/images).
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { K8sCluster } from '../../src/demo/k8s-cluster.js';
import { DEMO_APPS, postCaptured } from '../../src/demo/kubernetes.js';
import { readPcap, streamsOf } from '../../src/demo/pcap.js';
import { parseSs } from '../../src/doctor/ss.js';
import { PROBE_SNAT_V4 } from '../../src/node/contract.js';
import { createRedirector } from '../../src/redirect/index.js';

const execFileAsync = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const K8S = join(ROOT, 'scripts', 'k8s');
const AMBIT = join(ROOT, 'bin', 'ambit');
const CHART = join(ROOT, 'deploy', 'charts', 'ambit');
const VERSION = '0.1.0';
const IMAGES = ['ambit', 'sleep', 'httpbin'].map((n) =>
  join(ROOT, 'dist', 'images', `${n}-${VERSION}.oci.tar`),
);
const SYSTEM_NS = 'istio-system';
const NS = 'ambient-demo';
const HBONE_PORT = 15008;
const HTTPBIN_PORT = 8000;
/** Host directories the chart's hostPath volumes create; removed afterwards when the test made them. */
const ZTUNNEL_SOCK_DIR = '/var/run/ztunnel';
/** Slow polling for kubectl-backed conditions: each check forks kubectl. */
const POLL_MS = 250;
const DEADLINE_MS = 120_000;

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects are read field by field.
type Obj = any;

const env: Record<string, string> = {};

function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, {
    encoding: 'utf8',
    input: input ?? '',
    stdio: ['pipe', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
  });
}
function tryRun(f: () => string): string | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}
const k8s = (...args: string[]) => run(K8S, args);
const kubectl = (...args: string[]) => run(K8S, ['kubectl', ...args]);
const kubectlIn = (input: string, ...args: string[]) => run(K8S, ['kubectl', ...args], input);
const getJson = (...args: string[]): Obj => JSON.parse(kubectl(...args, '-o', 'json'));
function helm(...args: string[]): string {
  const bin = run(join(ROOT, 'scripts', 'helm'), ['--ambit-bin']).trim();
  return run('nsenter', [
    `--net=${env.AMBIT_K8S_NETNS_PATH}`,
    '--',
    bin,
    '--kubeconfig',
    env.AMBIT_K8S_KUBECONFIG!,
    ...args,
  ]);
}

async function until(what: string, check: () => boolean, timeoutMs = DEADLINE_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
const secondsSince = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

function ready(p: Obj): boolean {
  return p?.status?.conditions?.some((c: Obj) => c.type === 'Ready' && c.status === 'True') ?? false;
}
function podsOf(ns: string, selector: string): Obj[] {
  return getJson('-n', ns, 'get', 'pods', '-l', selector).items;
}
/** The one pod of an app (not being deleted). */
function appPod(app: string, ns = NS): Obj {
  const pods = podsOf(ns, `app=${app}`).filter((p) => !p.metadata.deletionTimestamp);
  assert.equal(pods.length, 1, `one ${app} pod in ${ns}`);
  return pods[0];
}

let cluster: K8sCluster;
/** The host pid of a pod's (first) container: containerd's task for its container id. */
const containerPid = (pod: Obj): number => cluster.containerPid(pod);
/** The pod's network namespace as `ip netns` names it (the runtime's cni-… bind mount). */
function podNetnsName(pod: Obj): string {
  const name = cluster.podNetns(pod);
  assert.match(name, /^cni-/, `${pod.metadata.name}'s netns is one of the runtime's`);
  return name;
}
const inNetns = (netns: string, cmd: string, args: string[]) =>
  run('ip', ['netns', 'exec', netns, cmd, ...args]);

function ztunnelPod(): Obj {
  const pods = podsOf(SYSTEM_NS, 'app=ztunnel').filter((p) => !p.metadata.deletionTimestamp);
  assert.equal(pods.length, 1, 'one ztunnel pod');
  return pods[0];
}

/** The chart values this cluster needs (scripts/k8s env): imported images, its CNI dirs, no DNS. */
const clusterValues = (): string[] => cluster.chartValues();

const lateSleep = (name: string) => `
apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${NS}, labels: {app: ${name}}}
spec:
  serviceAccountName: sleep
  terminationGracePeriodSeconds: 5
  containers:
  - {name: sleep, image: 'localhost/ambit/sleep:${VERSION}', imagePullPolicy: Never}
`;

const ANNOTATION = 'ambient.istio.io/redirection';
const enrolled = (p: Obj) => p?.metadata?.annotations?.[ANNOTATION] === 'enabled';

/** curl in the sleep pod (async: a running capture keeps draining meanwhile). */
async function curlFromSleep(args: string[]): Promise<Obj> {
  const sleep = appPod('sleep');
  const { stdout } = await execFileAsync(
    K8S,
    ['kubectl', '-n', NS, 'exec', sleep.metadata.name, '--', 'curl', '-sS', '--max-time', '10', ...args],
    { encoding: 'utf8' },
  );
  return JSON.parse(stdout);
}

/** Packets counted by the in-pod rule that accepts the kubelet's SNATed probes. */
function probeAcceptPackets(netns: string): number {
  const line = inNetns(netns, 'iptables-save', ['-c', '-t', 'mangle'])
    .split('\n')
    .find((l) => l.includes(`-A ISTIO_PRERT -s ${PROBE_SNAT_V4}/32`) && l.includes('-j ACCEPT'));
  assert.ok(line, `the pod has the rule accepting ${PROBE_SNAT_V4}`);
  return Number(/^\[(\d+):/.exec(line)?.[1] ?? 'NaN');
}

describe('the seed on a real Kubernetes cluster (helm install of deploy/charts/ambit)', {
  concurrency: false,
}, () => {
  let ztunnelSockDirExisted = true;

  before(() => {
    for (const line of k8s('env').split('\n')) {
      const m = /^(\w+)=(.*)$/.exec(line);
      if (m) env[m[1]!] = m[2]!;
    }
    // Always from this checkout (a stale image would test old code); a warm build takes seconds.
    run(join(ROOT, 'scripts', 'build-image'), ['--all']);
    k8s('down');
    ztunnelSockDirExisted = existsSync(ZTUNNEL_SOCK_DIR);
    const t0 = process.hrtime.bigint();
    k8s('up', ...IMAGES.flatMap((f) => ['--image', f]));
    cluster = new K8sCluster();
    console.log(`# scripts/k8s up with 3 images: ${secondsSince(t0).toFixed(1)} s`);
  });

  after(() => {
    tryRun(() => helm('uninstall', 'ambit', '-n', SYSTEM_NS, '--wait', '--timeout', '60s'));
    tryRun(() => k8s('down'));
    // hostPath DirectoryOrCreate made it on the node (the host's mount namespace): ours to remove.
    if (!ztunnelSockDirExisted && existsSync(ZTUNNEL_SOCK_DIR)) {
      for (const f of readdirSync(ZTUNNEL_SOCK_DIR))
        tryRun(() => run('rm', ['-f', join(ZTUNNEL_SOCK_DIR, f)]));
      tryRun(() => {
        rmdirSync(ZTUNNEL_SOCK_DIR);
        return '';
      });
    }
  });

  test('the chart (with these values) and deploy/ambit.yaml pass a server-side dry run', () => {
    const rendered = helm('template', 'ambit', CHART, '-n', SYSTEM_NS, ...clusterValues());
    // namespaced objects need their namespace to exist, even in a dry run
    kubectl('create', 'namespace', SYSTEM_NS);
    try {
      for (const [what, manifest] of [
        ['helm template', rendered],
        ['deploy/ambit.yaml', readFileSync(join(ROOT, 'deploy', 'ambit.yaml'), 'utf8')],
      ] as const) {
        const out = kubectlIn(manifest, 'apply', '--server-side', '--dry-run=server', '-f', '-');
        assert.match(out, /daemonset\.apps\/ztunnel serverside-applied \(server dry run\)/, what);
        assert.match(out, /deployment\.apps\/istiod serverside-applied \(server dry run\)/, what);
      }
    } finally {
      kubectl('delete', 'namespace', SYSTEM_NS, '--wait=true');
    }
    assert.equal(tryRun(() => kubectl('-n', SYSTEM_NS, 'get', 'ds,deploy', '-o', 'name')) ?? '', '');
  });

  test('helm install: istiod, ambit-cni-node and ztunnel become Ready', async (t) => {
    const t0 = process.hrtime.bigint();
    const out = helm('install', 'ambit', CHART, '-n', SYSTEM_NS, '--create-namespace', ...clusterValues());
    assert.match(out, /STATUS: deployed/);
    const workloadsReady = () => {
      const d = tryRun(() => kubectl('-n', SYSTEM_NS, 'get', 'deploy,ds', '-o', 'json'));
      if (!d) return false;
      const items: Obj[] = JSON.parse(d).items;
      const byName = (n: string) => items.find((i) => i.metadata.name === n);
      const istiod = byName('istiod');
      const cni = byName('ambit-cni-node');
      const zt = byName('ztunnel');
      return (
        istiod?.status?.readyReplicas === 1 &&
        cni?.status?.numberReady === 1 &&
        cni?.status?.desiredNumberScheduled === 1 &&
        zt?.status?.numberReady === 1 &&
        zt?.status?.desiredNumberScheduled === 1
      );
    };
    try {
      await until('istiod, ambit-cni-node and ztunnel Ready', workloadsReady);
    } finally {
      if (!workloadsReady()) console.log(tryRun(() => kubectl('-n', SYSTEM_NS, 'get', 'pods', '-o', 'wide')));
    }
    t.diagnostic(`helm install to all three workloads Ready: ${secondsSince(t0).toFixed(1)} s`);
    // The installer chained the plugin into the node's conflist.
    const conflist = readdirSync(env.AMBIT_K8S_CNI_CONF_DIR!).filter((f) => f.endsWith('.conflist'));
    assert.ok(conflist.length > 0);
    assert.match(
      run('cat', [join(env.AMBIT_K8S_CNI_CONF_DIR!, conflist.sort()[0]!)]),
      /"type":\s*"ambit-cni"/,
    );
  });

  test('ambient-demo: existing pods are enrolled by the agent when the namespace is labelled', async (t) => {
    kubectl('create', 'namespace', NS);
    await until(
      `${NS}/default service account`,
      () => tryRun(() => kubectl('-n', NS, 'get', 'sa', 'default')) !== undefined,
    );
    kubectlIn(DEMO_APPS, 'apply', '-f', '-');
    await until('sleep and httpbin Ready (not yet in the mesh)', () =>
      ['sleep', 'httpbin'].every((a) => podsOf(NS, `app=${a}`).some(ready)),
    );
    assert.ok(!enrolled(appPod('sleep')) && !enrolled(appPod('httpbin')));
    const t0 = process.hrtime.bigint();
    kubectl('label', 'namespace', NS, 'istio.io/dataplane-mode=ambient');
    await until(
      'sleep and httpbin annotated',
      () => enrolled(appPod('sleep')) && enrolled(appPod('httpbin')),
    );
    t.diagnostic(
      `namespace labelled to both running pods annotated ${ANNOTATION}=enabled: ${secondsSince(t0).toFixed(1)} s`,
    );
  });

  test('a pod created in the labelled namespace is enrolled by the CNI plugin before it starts', async (t) => {
    const t0 = process.hrtime.bigint();
    kubectlIn(lateSleep('sleep-new'), 'apply', '-f', '-');
    await until('sleep-new Ready', () => podsOf(NS, 'app=sleep-new').some(ready));
    t.diagnostic(`pod applied in the labelled namespace to Ready: ${secondsSince(t0).toFixed(1)} s`);
    const p = appPod('sleep-new');
    assert.ok(enrolled(p), `sleep-new is annotated ${ANNOTATION}=enabled`);
    // Enrolled at sandbox creation, by the plugin's event to the agent (not by the agent's informer).
    const agentLog = kubectl('-n', SYSTEM_NS, 'logs', 'ds/ambit-cni-node', '-c', 'node-agent');
    assert.match(agentLog, new RegExp(`CNI add event pod=${NS}/sleep-new netns=/var/run/netns/cni-`));
    assert.ok(!agentLog.includes(`found netns of running pod uid=${p.metadata.uid}`));
    const netns = podNetnsName(p);
    const r = await createRedirector({ backend: 'iptables', inbound: 'tproxy', dnsCapture: true }).verify(
      `/var/run/netns/${netns}`,
      [p.status.podIP],
    );
    assert.deepEqual({ missing: r.missing, unexpected: r.unexpected }, { missing: [], unexpected: [] });
    kubectl('-n', NS, 'delete', 'pod', 'sleep-new', '--wait=true');
  });

  test("httpbin stays Ready: the kubelet's probes take the 169.254.7.127 path", async () => {
    const pod = appPod('httpbin');
    const netns = podNetnsName(pod);
    const start = probeAcceptPackets(netns);
    // readiness and liveness every second: a dozen packets is a few probes through the accept rule
    await until(
      'probe packets accepted from 169.254.7.127 in httpbin',
      () => probeAcceptPackets(netns) >= start + 12,
    );
    const now = appPod('httpbin');
    assert.ok(ready(now), 'httpbin is Ready');
    assert.equal(now.status.containerStatuses[0].restartCount, 0, 'httpbin was never restarted by liveness');
    assert.equal(now.metadata.uid, pod.metadata.uid);
    // ...and the node SNATs them (the agent's host rule in the node's netns).
    const nodeNat = run('ip', ['netns', 'exec', env.AMBIT_K8S_NETNS!, 'iptables-save', '-c', '-t', 'nat']);
    assert.match(
      nodeNat,
      new RegExp(`^\\[[1-9]\\d*:\\d+\\] -A ISTIO_POSTRT .*-j SNAT --to-source ${PROBE_SNAT_V4}`, 'm'),
    );
  });

  test('ss -ntlp in each pod: 15001, 15006 and 15008 belong to the ztunnel process', () => {
    const zpid = containerPid(ztunnelPod());
    for (const app of ['sleep', 'httpbin']) {
      const netns = podNetnsName(appPod(app));
      const sockets = parseSs(inNetns(netns, 'ss', ['-Hntlp']));
      for (const port of [15001, 15006, 15008]) {
        const s = sockets.find((x) => x.localPort === port && x.localHost === '*');
        assert.ok(s, `${app}: a listener on *:${port}`);
        assert.ok(
          s.owners.some((o) => o.pid === zpid),
          `${app}: *:${port} is owned by ztunnel (pid ${zpid}), not ${JSON.stringify(s.owners)}`,
        );
      }
    }
  });

  // The chart captures DNS as Istio's does: the seed's ruleset plus Istio's DNS rules (with the switch off
  // it is the seed's byte for byte: test/redirect/render.test.ts).
  test("iptables-save in each pod equals the seed's ruleset with Istio's DNS capture", async () => {
    const redirector = createRedirector({ backend: 'iptables', inbound: 'tproxy', dnsCapture: true });
    for (const app of ['sleep', 'httpbin']) {
      const p = appPod(app);
      const r = await redirector.verify(`/var/run/netns/${podNetnsName(p)}`, [p.status.podIP]);
      assert.deepEqual(
        { app, missing: r.missing, unexpected: r.unexpected },
        { app, missing: [], unexpected: [] },
      );
    }
  });

  test('ambit doctor --pid passes every check for both pods', () => {
    const zpid = containerPid(ztunnelPod());
    for (const app of ['sleep', 'httpbin']) {
      const p = appPod(app);
      const r = spawnSync(
        'nsenter',
        [
          `--net=${env.AMBIT_K8S_NETNS_PATH}`,
          '--',
          AMBIT,
          ...['doctor', `${NS}/${p.metadata.name}`, '--pid', String(containerPid(p))],
          ...['--node-netns', `/proc/${zpid}/ns/net`, '--uid', p.metadata.uid],
          ...['--kubeconfig', env.AMBIT_K8S_KUBECONFIG!],
        ],
        { encoding: 'utf8' },
      );
      assert.equal(r.status, 0, `doctor ${app}:\n${r.stdout}${r.stderr}`);
    }
  });

  test('curl sleep → httpbin works by pod IP and by Service ClusterIP', async () => {
    const httpbin = appPod('httpbin');
    const sleep = appPod('sleep');
    const get = await curlFromSleep([`http://${httpbin.status.podIP}:${HTTPBIN_PORT}/get`]);
    assert.equal(get.origin, sleep.status.podIP, 'httpbin saw sleep’s own address through the tunnel');
    const clusterIP = kubectl('-n', NS, 'get', 'svc', 'httpbin', '-o', 'jsonpath={.spec.clusterIP}');
    const body = 'hello httpbin, through its Service';
    const post = await curlFromSleep([
      ...['-H', 'content-type: text/plain', '--data-binary', body],
      `http://${clusterIP}:8000/post`,
    ]);
    assert.equal(post.data, body);
    // ztunnel knew the VIP (workload xDS): HBONE with mTLS to the endpoint, the Service named.
    await until("ztunnel's outbound access line for the Service request", () =>
      kubectl('-n', SYSTEM_NS, 'logs', 'ds/ztunnel')
        .split('\n')
        .some(
          (l) =>
            l.includes('\taccess\tconnection complete\t') &&
            l.includes(`dst.service="httpbin.${NS}.svc.cluster.local"`) &&
            l.includes(`dst.addr=${httpbin.status.podIP}:${HBONE_PORT}`) &&
            l.includes('direction="outbound"') &&
            l.includes('src.identity="spiffe://'),
        ),
    );
  });

  test("a capture on sleep's eth0 shows only TLS to and from 15008", async () => {
    const httpbin = appPod('httpbin');
    const netns = podNetnsName(appPod('sleep'));
    const marker = `ambit-k8s-secret-${randomBytes(8).toString('hex')}`;
    const url = `http://${httpbin.status.podIP}:${HTTPBIN_PORT}/post`;
    const { echo, pcap } = await postCaptured(cluster, netns, url, marker);
    assert.equal(echo.data, marker);
    const { segments } = readPcap(pcap);
    assert.ok(segments.length > 0, 'the capture holds TCP packets');
    const stray = segments.filter((s) => s.srcPort !== HBONE_PORT && s.dstPort !== HBONE_PORT);
    assert.deepEqual(stray, [], `every TCP packet is to or from ${HBONE_PORT}`);
    const streams = streamsOf(segments).filter((s) => s.bytes > 0);
    assert.ok(streams.length >= 2, 'payload in both directions');
    for (const s of streams) assert.ok(s.tls, `${s.from}:${s.fromPort} > ${s.to}:${s.toPort} is TLS records`);
    assert.ok(streams.some((s) => s.toPort === HBONE_PORT && (s.tls?.application_data ?? 0) > 0));
    assert.ok(!pcap.includes(marker), 'the marker is not in the capture in plain text');
  });

  test("kubectl logs ds/ztunnel | grep inpod shows the seed's lines", () => {
    const lines = kubectl('-n', SYSTEM_NS, 'logs', 'ds/ztunnel')
      .split('\n')
      .filter((l) => l.includes('inpod'))
      .join('\n');
    for (const expected of [
      'inpod_enabled: true',
      'inpod_uds: ',
      'inpod_port_reuse: true',
      'inpod_mark: 1337',
      'ztunnel::inpod::workloadmanager: handling new stream',
      'pod received snapshot sent',
    ])
      assert.ok(lines.includes(expected), `no '${expected}' in:\n${lines}`);
    for (const app of ['sleep', 'httpbin'])
      assert.ok(
        lines.includes(`pod WorkloadUid("${appPod(app).metadata.uid}") received netns, starting proxy`),
        `${app}'s netns received`,
      );
  });
  test('graceful deletion of an enrolled pod: removed from the mesh, gone within its grace, replaced and enrolled', async (t) => {
    const old = appPod('httpbin');
    const uid = old.metadata.uid;
    const t0 = process.hrtime.bigint();
    // the real kubelet: SIGTERM, CNI DEL, then the API object goes (grace 5 s from the Deployment)
    kubectl('-n', NS, 'delete', 'pod', old.metadata.name, '--wait=true', '--timeout=60s');
    t.diagnostic(`enrolled httpbin deleted gracefully in ${secondsSince(t0).toFixed(1)} s`);
    await until('the agent removed the deleted pod from the mesh', () =>
      kubectl('-n', SYSTEM_NS, 'logs', 'ds/ambit-cni-node', '-c', 'node-agent')
        .split('\n')
        .some((l) => l.includes('pod removed from the mesh') && l.includes(`uid=${uid}`)),
    );
    await until("ztunnel stopped the deleted pod's proxy", () =>
      kubectl('-n', SYSTEM_NS, 'logs', 'ds/ztunnel')
        .split('\n')
        .some((l) => l.includes('pod delete request, draining proxy') && l.includes(`uid=${uid}`)),
    );
    // the Deployment's replacement is enrolled at creation (CNI) and serves through the mesh
    await until('a new httpbin Ready and enrolled', () =>
      podsOf(NS, 'app=httpbin').some((p) => p.metadata.uid !== uid && ready(p) && enrolled(p)),
    );
    const fresh = appPod('httpbin');
    const get = await curlFromSleep([`http://${fresh.status.podIP}:${HTTPBIN_PORT}/get`]);
    assert.equal(get.origin, appPod('sleep').status.podIP);
  });

  test('no ztunnel on the node: a new ambient pod waits in ContainerCreating with the CNI error, starts once ztunnel is back', async (t) => {
    // Take ztunnel off the node the way an operator would: a nodeSelector no node matches.
    kubectl(
      ...['-n', SYSTEM_NS, 'patch', 'ds', 'ztunnel', '--type=merge'],
      ...['-p', '{"spec":{"template":{"spec":{"nodeSelector":{"ambit.io/no-such-node":"true"}}}}}'],
    );
    const t0 = process.hrtime.bigint();
    await until('no ztunnel pod left', () => podsOf(SYSTEM_NS, 'app=ztunnel').length === 0);
    t.diagnostic(`ztunnel gone from the node: ${secondsSince(t0).toFixed(1)} s`);

    kubectlIn(lateSleep('sleep-waits'), 'apply', '-f', '-');
    let cniError = '';
    await until('a FailedCreatePodSandBox event naming the CNI plugin', () => {
      const events: Obj[] = getJson(
        ...['-n', NS, 'get', 'events', '--field-selector', 'involvedObject.name=sleep-waits'],
      ).items;
      cniError = events.find((e) => e.reason === 'FailedCreatePodSandBox')?.message ?? '';
      return cniError !== '';
    });
    t.diagnostic(`CNI error: ${cniError}`);
    assert.match(cniError, /ambit-cni/);
    const waiting = appPod('sleep-waits');
    assert.equal(waiting.status.phase, 'Pending');
    const state = waiting.status.containerStatuses?.[0]?.state?.waiting?.reason ?? 'ContainerCreating';
    assert.equal(state, 'ContainerCreating');
    assert.ok(!ready(waiting));

    // ztunnel back: the kubelet's next sandbox attempt succeeds and the pod is enrolled.
    const t1 = process.hrtime.bigint();
    kubectl(
      ...['-n', SYSTEM_NS, 'patch', 'ds', 'ztunnel', '--type=json'],
      ...['-p', '[{"op":"remove","path":"/spec/template/spec/nodeSelector/ambit.io~1no-such-node"}]'],
    );
    await until('ztunnel Ready again', () => podsOf(SYSTEM_NS, 'app=ztunnel').some(ready));
    t.diagnostic(`ztunnel back to Ready: ${secondsSince(t1).toFixed(1)} s`);
    await until('sleep-waits Running and Ready', () => podsOf(NS, 'app=sleep-waits').some(ready), 300_000);
    t.diagnostic(`ztunnel back to the waiting pod Ready: ${secondsSince(t1).toFixed(1)} s`);
    const started = appPod('sleep-waits');
    assert.ok(enrolled(started));
    const r = await createRedirector({ backend: 'iptables', inbound: 'tproxy', dnsCapture: true }).verify(
      `/var/run/netns/${podNetnsName(started)}`,
      [started.status.podIP],
    );
    assert.deepEqual({ missing: r.missing, unexpected: r.unexpected }, { missing: [], unexpected: [] });
  });
  test('a ztunnel rollout (new tag) while sleep sends a request every 10 ms: no request fails', async (t) => {
    // The same image under a new tag, imported into the node: a real image change for the DaemonSet.
    const tag = `${VERSION}-rollout`;
    run(join(ROOT, 'scripts', 'build-image'), ['--tag', tag]);
    const archive = join(ROOT, 'dist', 'images', `ambit-${tag}.oci.tar`);
    k8s('import', archive);
    rmSync(archive);
    const old = ztunnelPod();
    // The old ztunnel's log, kept after its pod is gone: on a failure its WARN/ERROR lines explain it.
    let oldLog = '';
    const follow = execFile(
      K8S,
      ['kubectl', '-n', SYSTEM_NS, 'logs', '-f', '--tail=-1', old.metadata.name],
      { encoding: 'utf8', maxBuffer: 64 << 20 },
      () => {},
    );
    follow.stdout?.on('data', (d: string) => {
      oldLog += d;
    });
    const sleep = appPod('sleep');
    const clusterIP = kubectl('-n', NS, 'get', 'svc', 'httpbin', '-o', 'jsonpath={.spec.clusterIP}');
    // One request every 10 ms (curl --rate 100/s), each on a new connection (Connection: close), so
    // every request is a fresh capture by the in-pod rules and a fresh accept by ztunnel's listeners.
    // One line per request: its HTTP code (000 when it failed, followed by curl's error). Batches
    // of 100 URLs until /tmp/stop exists.
    const loop = [
      'rm -f /tmp/stop /tmp/requests',
      'while [ ! -e /tmp/stop ]; do',
      `  curl -sS --rate 100/s --max-time 5 -H 'Connection: close' -o /dev/null -w '%{http_code}\\n' 'http://${clusterIP}:8000/get?n=[1-100]' 2>&1 | tee -a /tmp/requests`,
      'done',
    ].join('\n');
    let clientOut = '';
    let clientErr = '';
    const child = execFile(K8S, ['kubectl', '-n', NS, 'exec', sleep.metadata.name, '--', 'sh', '-c', loop], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    child.stdout?.on('data', (d: string) => {
      clientOut += d;
    });
    child.stderr?.on('data', (d: string) => {
      clientErr += d;
    });
    const client = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const clientStarted = process.hrtime.bigint();
    const sent = () =>
      Number(
        tryRun(() =>
          kubectl('-n', NS, 'exec', sleep.metadata.name, '--', 'sh', '-c', 'wc -l </tmp/requests'),
        )?.trim() ?? 0,
      );
    const stopClient = () => kubectl('-n', NS, 'exec', sleep.metadata.name, '--', 'sh', '-c', ': >/tmp/stop');
    let out = '';
    try {
      // requests flowing through the old ztunnel first
      await until('the client looping', () => sent() >= 20);
      const t0 = process.hrtime.bigint();
      kubectl('-n', SYSTEM_NS, 'set', 'image', 'ds/ztunnel', `istio-proxy=localhost/ambit/ambit:${tag}`);
      await until(
        'the new ztunnel Ready and the old one gone',
        () => {
          const pods = podsOf(SYSTEM_NS, 'app=ztunnel');
          return (
            pods.length === 1 &&
            pods[0].metadata.uid !== old.metadata.uid &&
            pods[0].spec.containers[0].image.endsWith(`:${tag}`) &&
            ready(pods[0])
          );
        },
        180_000,
      );
      t.diagnostic(`rollout to the old ztunnel gone: ${secondsSince(t0).toFixed(1)} s`);
      // the new ztunnel owns the pods' listeners now
      const zpid = containerPid(ztunnelPod());
      const inSleep = parseSs(inNetns(podNetnsName(sleep), 'ss', ['-Hntlp']));
      for (const port of [15001, 15006, 15008])
        assert.ok(
          inSleep.some((x) => x.localPort === port && x.owners.some((o) => o.pid === zpid)),
          `sleep's *:${port} is the new ztunnel's (pid ${zpid})`,
        );
      // and a few more through the new one alone
      const sentBefore = sent();
      await until('requests through the new ztunnel alone', () => sent() >= sentBefore + 50);
    } finally {
      // the loop ends at its next turn; should the stop file not be written, end the exec itself
      if (tryRun(stopClient) === undefined) child.kill();
      const code = await client;
      out = clientOut + (code === 0 ? '' : `\nFAIL client exited ${code}: ${clientErr}`);
    }
    const results = out.split('\n').filter(Boolean);
    const failed = results.filter((r) => r !== '200');
    const seconds = secondsSince(clientStarted);
    t.diagnostic(
      `requests during the rollout: ${results.length} in ${seconds.toFixed(1)} s (${(results.length / seconds).toFixed(0)}/s, one every ${((seconds * 1000) / results.length).toFixed(1)} ms on average), failed: ${failed.length}`,
    );
    assert.ok(results.length > 100, `the client sent ${results.length} requests`);
    follow.kill();
    if (failed.length > 0) {
      const newLog = tryRun(() => kubectl('-n', SYSTEM_NS, 'logs', 'ds/ztunnel')) ?? '';
      console.log(`# failed requests:\n${failed.slice(0, 20).join('\n')}`);
      const explain = (log: string) =>
        log
          .split('\n')
          .filter((l) => /WARN|ERROR|drain|shutting|handover|migrate/i.test(l))
          .slice(-40)
          .join('\n');
      console.log(`# old ztunnel:\n${explain(oldLog)}\n# new ztunnel:\n${explain(newLog)}`);
    }
    assert.deepEqual(failed, [], 'no request failed during the rollout');
    // Both ztunnels set tcp_migrate_req in each pod (unprivileged: through a private /proc/sys).
    const newLog = tryRun(() => kubectl('-n', SYSTEM_NS, 'logs', 'ds/ztunnel')) ?? '';
    for (const [which, log] of [
      ['old', oldLog],
      ['new', newLog],
    ] as const)
      assert.doesNotMatch(log, /cannot enable tcp_migrate_req/, `the ${which} ztunnel set tcp_migrate_req`);
  });

  test('helm uninstall: the pods keep running, unmeshed (no plugin, rules, annotation, ztunnel), and reachable', async (t) => {
    const before = ['sleep', 'httpbin'].map((a) => appPod(a));
    for (const p of before) assert.ok(enrolled(p), `${p.metadata.name} is enrolled before`);
    const t0 = process.hrtime.bigint();
    const out = helm('uninstall', 'ambit', '-n', SYSTEM_NS, '--wait', '--timeout', '180s');
    assert.match(out, /release "ambit" uninstalled/);
    t.diagnostic(
      `helm uninstall (pre-delete hook un-meshing the node, then the release): ${secondsSince(t0).toFixed(1)} s`,
    );
    await until(
      'no ambit pod left in istio-system',
      () => podsOf(SYSTEM_NS, 'app.kubernetes.io/part-of=ambit').length === 0,
    );

    for (const p of before) {
      const now = getJson('-n', NS, 'get', 'pod', p.metadata.name);
      // the same pods, never restarted
      assert.equal(now.metadata.uid, p.metadata.uid);
      assert.ok(ready(now), `${p.metadata.name} still Ready`);
      assert.equal(now.status.containerStatuses[0].restartCount, 0, `${p.metadata.name} not restarted`);
      assert.equal(
        now.metadata.annotations?.[ANNOTATION],
        undefined,
        `${p.metadata.name}: annotation removed`,
      );
      const netns = podNetnsName(now);
      assert.doesNotMatch(
        inNetns(netns, 'iptables-save', []),
        /ISTIO_/,
        `${p.metadata.name}: in-pod rules removed`,
      );
      const listeners = parseSs(inNetns(netns, 'ss', ['-Hntl'])).map((x) => x.localPort);
      for (const port of [15001, 15006, 15008])
        assert.ok(!listeners.includes(port), `${p.metadata.name}: no *:${port}`);
    }
    // The node: the plugin is out of the conflist, its binary and kubeconfig gone; the host probe rules gone.
    const confDir = env.AMBIT_K8S_CNI_CONF_DIR!;
    for (const f of readdirSync(confDir))
      assert.doesNotMatch(
        readFileSync(join(confDir, f), 'utf8'),
        /ambit-cni/,
        `${f} no longer chains ambit-cni`,
      );
    assert.ok(!existsSync(join(env.AMBIT_K8S_CNI_BIN_DIR!, 'ambit-cni')), 'the plugin binary is removed');
    assert.ok(
      !existsSync(join(env.AMBIT_K8S_RUN!, 'ambit-cni', 'ambit-cni-kubeconfig')),
      'its kubeconfig is removed',
    );
    const nodeRules = run('ip', ['netns', 'exec', env.AMBIT_K8S_NETNS!, 'iptables-save']);
    assert.doesNotMatch(nodeRules, /ISTIO/, 'the host probe rules are removed');
    // The agent said why it uninstalled: its DaemonSet was being deleted (the hook), not an upgrade.
    // (Its pod is gone; containerd keeps no log of it, so the hook's success stands for it.)

    // sleep → httpbin straight, in plain text: a capture on sleep's eth0 sees the request on port 8000.
    const httpbin = appPod('httpbin');
    const netns = podNetnsName(appPod('sleep'));
    const marker = `ambit-k8s-plain-${randomBytes(8).toString('hex')}`;
    const url = `http://${httpbin.status.podIP}:${HTTPBIN_PORT}/post`;
    const { echo, pcap } = await postCaptured(cluster, netns, url, marker);
    assert.equal(echo.data, marker);
    assert.equal(echo.origin, appPod('sleep').status.podIP);
    const { segments } = readPcap(pcap);
    assert.ok(
      segments.some((s) => s.dstPort === HTTPBIN_PORT),
      'the request went to httpbin:8000 directly',
    );
    assert.ok(!segments.some((s) => s.dstPort === HBONE_PORT || s.srcPort === HBONE_PORT), 'no HBONE');
    assert.ok(pcap.includes(marker), 'unmeshed: the marker crosses the wire in plain text');
    const clusterIP = kubectl('-n', NS, 'get', 'svc', 'httpbin', '-o', 'jsonpath={.spec.clusterIP}');
    const get = await curlFromSleep([`http://${clusterIP}:8000/get`]);
    assert.equal(get.origin, appPod('sleep').status.podIP, 'by Service IP too');

    // A new pod in the still-labelled namespace starts without the mesh (no plugin to stop it).
    kubectlIn(lateSleep('sleep-after'), 'apply', '-f', '-');
    await until('sleep-after Ready without the mesh', () => podsOf(NS, 'app=sleep-after').some(ready));
    assert.ok(!enrolled(appPod('sleep-after')));
  });
});
