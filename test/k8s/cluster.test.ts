/**
 * `scripts/k8s` on the real machine: a cold `up` to a Ready node, pods with IPs talking to each other,
 * a Service ClusterIP (and the `kubernetes` Service) through kube-proxy from a pod, a DaemonSet rolled
 * out, a pod-bound projected token with audience `istio-ca` accepted by a TokenReview, the host's
 * network namespace untouched while the node runs, and `down` leaving nothing behind (processes,
 * network namespaces, mounts, iptables, links, cgroups, files, sysctls). Runs only with
 * `npm run test:k8s` (root; takes the whole machine's single cluster, so never in parallel).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { eventually } from '../helpers/wait.js';

const K8S = fileURLToPath(new URL('../../../scripts/k8s', import.meta.url));
const NS = 'ambit-k8s-test';
const STATE = '/var/lib/ambit-k8s';
const RUN = '/run/ambit-k8s';
const NETNS = 'ambit-k8s-node';
const BUSYBOX = 'ambit.local/busybox:1.35';
const HELLO = 'ambit.local/k8s-test-hello:v1';
const OCI_IMAGE = fileURLToPath(new URL('../../../scripts/lib/oci-image.mjs', import.meta.url));
const NOTHING = { procs: [], netns: [], mounts: [], cgroups: [], files: [], hostRules: [], links: [] };
const KUBERNETES_SVC = '10.96.0.1';
const HOST_SYSCTLS = ['vm/overcommit_memory', 'vm/panic_on_oom', 'kernel/panic', 'kernel/panic_on_oops'];
/** Directories outside our own the node's components write into. */
const SHARED_DIRS = ['/var/log/containers', '/var/lib/cni', '/run/containerd', '/var/lib/kubelet'];

function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, {
    encoding: 'utf8',
    input: input ?? '',
    stdio: ['pipe', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
  });
}
function k8s(...args: string[]): string {
  return run(K8S, args);
}
function kubectl(...args: string[]): string {
  return run(K8S, ['kubectl', ...args]);
}
function kubectlIn(input: string, ...args: string[]): string {
  return run(K8S, ['kubectl', ...args], input);
}
function tryRun(f: () => string): string | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}
function timed<T>(f: () => T): [T, number] {
  const t0 = process.hrtime.bigint();
  const r = f();
  return [r, Number(process.hrtime.bigint() - t0) / 1e9];
}
async function timedAsync(f: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

interface HostSnapshot {
  iptables: string;
  ip6tables: string;
  nftables: string;
  links: string;
  addrs: string;
  routes: string;
  sysctls: Record<string, string>;
  sharedDirs: Record<string, boolean>;
}

/** iptables-save without comments and counters, so two dumps of the same rules compare equal. */
function rules(cmd: string): string {
  return run(cmd, [])
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, ''))
    .join('\n');
}

function hostSnapshot(): HostSnapshot {
  return {
    iptables: rules('iptables-save'),
    ip6tables: rules('ip6tables-save'),
    nftables: run('nft', ['list', 'ruleset']).replace(/packets \d+ bytes \d+/g, ''),
    links: run('ip', ['-o', 'link', 'show'])
      .split('\n')
      .map((l) => l.split(':')[1]?.trim() ?? '')
      .sort()
      .join(' '),
    addrs: run('ip', ['-o', 'addr', 'show']),
    routes: run('ip', ['route', 'show', 'table', 'all']),
    sysctls: Object.fromEntries(HOST_SYSCTLS.map((s) => [s, readFileSync(`/proc/sys/${s}`, 'utf8').trim()])),
    sharedDirs: Object.fromEntries(SHARED_DIRS.map((d) => [d, existsSync(d)])),
  };
}

/** Everything of the node still on the machine, by kind; all lists empty means nothing is left. */
/** Entries of directories that another containerd on the machine may use too. */
function sharedEntries(): string[] {
  return ['/var/lib/cni/results', '/run/containerd/s'].flatMap((d) =>
    existsSync(d) ? readdirSync(d).map((f) => `${d}/${f}`) : [],
  );
}
let sharedBefore = new Set<string>();

function leftovers(): Record<string, string[]> {
  const procs: string[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    const cmdline = tryRun(() => readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ')) ?? '';
    const cgroup = tryRun(() => readFileSync(`/proc/${p}/cgroup`, 'utf8')) ?? '';
    // A killed pod process stays a zombie until PID 1 (not ours) reaps it: it holds nothing.
    const state = tryRun(() => readFileSync(`/proc/${p}/stat`, 'utf8'))?.replace(/^.*\) /s, '')[0];
    if (state === 'Z') continue;
    // the components and shims name our directories; pod processes sit in our cgroups
    if (cmdline.includes(`${STATE}/`) || cmdline.includes(`${RUN}/`) || cgroup.includes(':/ambit-k8s'))
      procs.push(`${p} ${cmdline.slice(0, 120)}`);
  }
  const netns = run('ip', ['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n === NETNS || n.startsWith('cni-'));
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(STATE) || l.includes(RUN) || l.includes('/run/netns/cni-'));
  const cgroups = readdirSync('/sys/fs/cgroup')
    .map((h) => `/sys/fs/cgroup/${h}/ambit-k8s`)
    .filter((d) => existsSync(d));
  const files = [STATE, RUN].filter((f) => existsSync(f));
  // shared with any other containerd on the machine: only entries that were not there before count
  files.push(...sharedEntries().filter((f) => !sharedBefore.has(f)));
  for (const f of ['kubelet.sock', 'kubelet_internal_checkpoint'])
    if (existsSync(`/var/lib/kubelet/device-plugins/${f}`))
      files.push(`/var/lib/kubelet/device-plugins/${f}`);
  if (existsSync('/var/log/containers'))
    files.push(
      ...readdirSync('/var/log/containers')
        .map((f) => `/var/log/containers/${f}`)
        .filter((f) => tryRun(() => readlinkSync(f))?.startsWith(STATE)),
    );
  const hostRules = (rules('iptables-save') + rules('ip6tables-save'))
    .split('\n')
    .filter((l) => /KUBE-|CNI-/.test(l));
  const links = run('ip', ['-o', 'link', 'show'])
    .split('\n')
    .filter((l) => /\b(cni0|veth)/.test(l));
  return { procs, netns, mounts, cgroups, files, hostRules, links };
}

interface Pod {
  status?: { phase?: string; podIP?: string; conditions?: { type: string; status: string }[] };
}

function pod(name: string): Pod {
  return JSON.parse(kubectl('-n', NS, 'get', 'pod', name, '-o', 'json')) as Pod;
}
function ready(p: Pod): boolean {
  return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}
function execIn(podName: string, script: string): string {
  return kubectl('-n', NS, 'exec', podName, '--', 'sh', '-c', script);
}

const MANIFESTS = `
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: ${NS}, labels: {app: server}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: server
    image: ${BUSYBOX}
    imagePullPolicy: Never
    # a persistent server answering each connection with the pod's name
    command: [nc, -ll, -p, "8080", -e, hostname]
    ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: ${NS}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: client, image: ${BUSYBOX}, imagePullPolicy: Never, command: [sleep, "86400"]}
---
apiVersion: v1
kind: Service
metadata: {name: server, namespace: ${NS}}
spec:
  selector: {app: server}
  ports: [{name: tcp-hello, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: istio-probe, namespace: ${NS}}
---
apiVersion: v1
kind: Pod
metadata: {name: istio-token, namespace: ${NS}}
spec:
  serviceAccountName: istio-probe
  terminationGracePeriodSeconds: 1
  containers:
  - name: probe
    image: ${BUSYBOX}
    imagePullPolicy: Never
    command: [sleep, "86400"]
    volumeMounts: [{name: istio-token, mountPath: /var/run/secrets/tokens, readOnly: true}]
  volumes:
  - name: istio-token
    projected:
      sources:
      - serviceAccountToken: {audience: istio-ca, expirationSeconds: 43200, path: istio-token}
`;

const DAEMONSET = `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-probe, namespace: ${NS}}
spec:
  selector: {matchLabels: {app: node-probe}}
  template:
    metadata: {labels: {app: node-probe}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: probe, image: ${BUSYBOX}, imagePullPolicy: Never, command: [sleep, "86400"]}
`;

describe('scripts/k8s: a real single-node cluster', { concurrency: false }, () => {
  let host: HostSnapshot;
  let downRan = false;

  let helloImage = '';
  let work = '';

  before(() => {
    // An extra image given to `up --image`, written by the same OCI writer as the node's own images.
    work = mkdtempSync(join(tmpdir(), 'ambit-k8s-test-'));
    mkdirSync(join(work, 'rootfs', 'bin'), { recursive: true });
    copyFileSync('/bin/busybox', join(work, 'rootfs', 'bin', 'busybox'));
    chmodSync(join(work, 'rootfs', 'bin', 'busybox'), 0o755);
    helloImage = join(work, 'hello.tar');
    run(OCI_IMAGE, [
      ...['--ref', HELLO, '--layer', join(work, 'rootfs'), '--out', helloImage],
      ...['--entrypoint', '["/bin/busybox","echo"]', '--cmd', '["hello from an imported image"]'],
    ]);
    // A cold start: whatever an earlier run left is removed first.
    k8s('down');
    sharedBefore = new Set(sharedEntries());
    assert.deepEqual(leftovers(), NOTHING);
    host = hostSnapshot();
  });

  after(() => {
    if (!downRan) tryRun(() => k8s('down'));
    rmSync(work, { recursive: true, force: true });
  });

  test('up from a cold state brings the node Ready', async (t) => {
    const [out, secs] = timed(() => k8s('up', '--image', helloImage));
    t.diagnostic(`up (cold) to node Ready: ${secs.toFixed(1)} s`);
    assert.match(out, /node ambit-k8s-node Ready/);
    const nodes = kubectl('get', 'nodes', '--no-headers', '-o', 'wide');
    assert.match(nodes, /^ambit-k8s-node\s+Ready\s.*v1\.34\.4\s+10\.200\.0\.1\s/m);
    const status = k8s('status');
    for (const c of [
      'containerd',
      'etcd',
      'kube-apiserver',
      'kube-controller-manager',
      'kube-scheduler',
      'kubelet',
      'kube-proxy',
    ])
      assert.match(status, new RegExp(`^${c}\\s+running\\s+pid \\d+`, 'm'));
    assert.match(status, /^node\s+ambit-k8s-node Ready$/m);
    // The node's podCIDR comes from the controller-manager and matches the CNI range.
    await eventually(
      'the node podCIDR',
      () => kubectl('get', 'node', 'ambit-k8s-node', '-o', 'jsonpath={.spec.podCIDR}') === '10.244.0.0/24',
    );
  });

  test('the host network namespace is untouched while the node runs', () => {
    const now = hostSnapshot();
    assert.equal(now.iptables, host.iptables);
    assert.equal(now.ip6tables, host.ip6tables);
    assert.equal(now.nftables, host.nftables);
    assert.equal(now.links, host.links);
    assert.equal(now.addrs, host.addrs);
    assert.equal(now.routes, host.routes);
    // ...while the node's own namespace has the bridge-less node IP and kube-proxy's rules.
    const nodeNat = run('ip', ['netns', 'exec', NETNS, 'iptables-save', '-t', 'nat']);
    assert.match(nodeNat, /-d 10\.96\.0\.1\/32 .*default\/kubernetes:https/);
    assert.match(run('ip', ['-n', NETNS, '-o', 'addr', 'show', 'dev', 'lo']), /inet 10\.200\.0\.1\/32/);
  });

  test('busybox pods reach Running with IPs and talk to each other', async (t) => {
    const secs = await timedAsync(async () => {
      kubectl('create', 'namespace', NS);
      // pods wait for their namespace's default service account (the controller-manager makes it)
      await eventually(
        `${NS}/default service account`,
        () => tryRun(() => kubectl('-n', NS, 'get', 'serviceaccount', 'default')) !== undefined,
      );
      kubectlIn(MANIFESTS, 'apply', '-f', '-');
      await eventually('pods Ready', () =>
        ['server', 'client', 'istio-token'].every((n) => {
          const p = tryRun(() => JSON.stringify(pod(n)));
          return p !== undefined && ready(JSON.parse(p) as Pod);
        }),
      );
    });
    t.diagnostic(`three pods applied to Ready: ${secs.toFixed(1)} s`);
    const server = pod('server');
    const client = pod('client');
    assert.equal(server.status?.phase, 'Running');
    assert.equal(client.status?.phase, 'Running');
    assert.match(server.status?.podIP ?? '', /^10\.244\.0\.\d+$/);
    assert.match(client.status?.podIP ?? '', /^10\.244\.0\.\d+$/);
    assert.notEqual(server.status?.podIP, client.status?.podIP);
    assert.equal(execIn('client', `nc -w 5 ${server.status?.podIP} 8080 </dev/null`).trim(), 'server');
    // the pod sees its own IP on eth0
    assert.match(
      execIn('client', 'ip -o -4 addr show dev eth0'),
      new RegExp(`inet ${client.status?.podIP}/24`),
    );
  });

  test('a Service ClusterIP and the kubernetes Service work through kube-proxy from a pod', async () => {
    const clusterIP = kubectl('-n', NS, 'get', 'svc', 'server', '-o', 'jsonpath={.spec.clusterIP}');
    assert.match(clusterIP, /^10\.(9[6-9]|1[01]\d)\.\d+\.\d+$/);
    let reply = '';
    await eventually(`a reply through ${clusterIP}:80`, () => {
      reply = tryRun(() => execIn('client', `nc -w 5 ${clusterIP} 80 </dev/null`))?.trim() ?? '';
      return reply === 'server';
    });
    // hairpin: the server reaches itself through its own Service
    assert.equal(execIn('server', `nc -w 5 ${clusterIP} 80 </dev/null`).trim(), 'server');
    // The apiserver behind the kubernetes Service (DNAT to 10.200.0.1:6443): it answers plain HTTP
    // on its TLS port with Go's 400.
    let api = '';
    await eventually('the apiserver through the kubernetes Service', () => {
      api =
        tryRun(() =>
          execIn('client', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${KUBERNETES_SVC} 443`),
        ) ?? '';
      return api.includes('Client sent an HTTP request to an HTTPS server');
    });
  });

  test('images given to up --image and to scripts/k8s import run in pods', async () => {
    const run1 = (name: string) => `
apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${NS}}
spec:
  restartPolicy: Never
  containers: [{name: hello, image: ${HELLO}, imagePullPolicy: Never}]
`;
    kubectlIn(run1('hello'), 'apply', '-f', '-');
    await eventually('the hello pod Succeeded', () => pod('hello').status?.phase === 'Succeeded');
    assert.equal(kubectl('-n', NS, 'logs', 'hello').trim(), 'hello from an imported image');
    // importing again into the running node is idempotent
    assert.match(k8s('import', helloImage), /imported/);
    kubectlIn(run1('hello-again'), 'apply', '-f', '-');
    await eventually(
      'the second hello pod Succeeded',
      () => pod('hello-again').status?.phase === 'Succeeded',
    );
  });

  test('a DaemonSet rolls out on the node', async (t) => {
    const secs = await timedAsync(async () => {
      kubectlIn(DAEMONSET, 'apply', '-f', '-');
      await eventually('the DaemonSet rolled out', () => {
        const ds = tryRun(() => kubectl('-n', NS, 'get', 'ds', 'node-probe', '-o', 'json'));
        if (!ds) return false;
        const s = (JSON.parse(ds) as { status?: Record<string, number> }).status ?? {};
        return s.desiredNumberScheduled === 1 && s.numberReady === 1 && s.updatedNumberScheduled === 1;
      });
    });
    t.diagnostic(`DaemonSet applied to rolled out: ${secs.toFixed(1)} s`);
    const pods = kubectl(
      '-n',
      NS,
      'get',
      'pods',
      '-l',
      'app=node-probe',
      '-o',
      'jsonpath={.items[*].spec.nodeName}',
    );
    assert.equal(pods, 'ambit-k8s-node');
  });

  test('a projected token with audience istio-ca is mounted and accepted by a TokenReview', () => {
    const token = execIn('istio-token', 'cat /var/run/secrets/tokens/istio-token').trim();
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      aud: string[];
      iss: string;
      sub: string;
      'kubernetes.io'?: { pod?: { name: string }; node?: { name: string } };
    };
    assert.deepEqual(payload.aud, ['istio-ca']);
    assert.equal(payload.iss, 'https://kubernetes.default.svc.cluster.local');
    assert.equal(payload.sub, `system:serviceaccount:${NS}:istio-probe`);
    assert.equal(payload['kubernetes.io']?.pod?.name, 'istio-token');
    assert.equal(payload['kubernetes.io']?.node?.name, 'ambit-k8s-node');

    const review = (audiences?: string[]) =>
      JSON.parse(
        kubectlIn(
          JSON.stringify({
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenReview',
            spec: audiences ? { token, audiences } : { token },
          }),
          'create',
          '-f',
          '-',
          '-o',
          'json',
        ),
      ) as {
        status: {
          authenticated?: boolean;
          audiences?: string[];
          user?: { username?: string; extra?: Record<string, string[]> };
        };
      };
    const ok = review(['istio-ca']).status;
    assert.equal(ok.authenticated, true);
    assert.deepEqual(ok.audiences, ['istio-ca']);
    assert.equal(ok.user?.username, `system:serviceaccount:${NS}:istio-probe`);
    assert.deepEqual(ok.user?.extra?.['authentication.kubernetes.io/pod-name'], ['istio-token']);
    // bound to its audience: the apiserver's own audience does not accept it
    assert.notEqual(review().status.authenticated, true);
  });

  test('down leaves nothing behind', (t) => {
    const [, secs] = timed(() => k8s('down'));
    downRan = true;
    t.diagnostic(`down: ${secs.toFixed(1)} s`);
    assert.deepEqual(leftovers(), NOTHING);
    assert.deepEqual(hostSnapshot(), host);
    // idempotent
    k8s('down');
    assert.match(k8s('env'), /AMBIT_K8S_CNI_CONF_DIR=\/var\/lib\/ambit-k8s\/cni\/net\.d/);
  });

  test('down cleans up after a crash: every component killed with pods running', async () => {
    k8s('up');
    const pids = readdirSync(`${RUN}/pids`).map((f) => readFileSync(`${RUN}/pids/${f}`, 'utf8').trim());
    assert.ok(pids.length >= 7);
    kubectlIn(DAEMONSET.replace(`namespace: ${NS}`, 'namespace: default'), 'apply', '-f', '-');
    await eventually('a running DaemonSet pod', () =>
      (
        tryRun(() =>
          kubectl('get', 'pods', '-l', 'app=node-probe', '-o', 'jsonpath={.items[*].status.phase}'),
        ) ?? ''
      ).includes('Running'),
    );
    run('kill', ['-KILL', ...pids]);
    const status = spawnSync(K8S, ['status'], { encoding: 'utf8' });
    assert.notEqual(status.status, 0);
    assert.match(status.stdout, /^kubelet\s+stopped$/m);
    k8s('down');
    assert.deepEqual(leftovers(), NOTHING);
    assert.deepEqual(hostSnapshot(), host);
  });

  test('down cleans up after an up killed halfway', async () => {
    const up = spawn(K8S, ['up'], { detached: true, stdio: 'ignore' });
    const exited = new Promise((resolve) => up.once('exit', resolve));
    await eventually('up to start the apiserver', () => existsSync(`${RUN}/pids/kube-apiserver.pid`));
    process.kill(-up.pid!, 'SIGKILL');
    await exited;
    k8s('down');
    assert.deepEqual(leftovers(), NOTHING);
    assert.deepEqual(hostSnapshot(), host);
  });

  test('a failed up reports the failing component and cleans up after itself', () => {
    // an IPv6 node IP: the apiserver exits (its Service range is IPv4) with etcd and containerd up
    const r = spawnSync(K8S, ['up'], {
      encoding: 'utf8',
      env: { ...process.env, AMBIT_K8S_NODE_IP: 'fd00::1' },
    });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /service IP family .* must match public address family/);
    assert.match(r.stderr, /k8s: error: kube-apiserver exited while waiting for kube-apiserver \/readyz/);
    assert.match(r.stderr, /up failed; cleaning up/);
    assert.deepEqual(leftovers(), NOTHING);
    assert.deepEqual(hostSnapshot(), host);
  });
});
