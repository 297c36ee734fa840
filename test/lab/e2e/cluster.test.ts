/**
 * `ambit lab up` as a running cluster on the real kernel (issue 7, point 5): the lab API server,
 * per node the agent, ztunnel and kubelet stand-in as background processes; pods written to the API
 * server get their sandbox through bridge + host-local + loopback + ambit-cni, and ambient pods are
 * enrolled (rules, the seed's four listeners, annotation) before the sandbox exists.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiException,
  AuthenticationV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
  Watch,
} from '@kubernetes/client-node';
import { podFromCgroupFile } from '../../../src/agent/cgroup.js';
import { PLUGIN_KUBECONFIG_NAME } from '../../../src/cni/names.js';
import { cgroupPids, labCgroup } from '../../../src/lab/cluster/cgroup.js';
import {
  adminClient,
  ClusterLayout,
  clusterDown,
  clusterPod,
  clusterStatus,
  labProcesses,
  serviceAccountConfig,
  startComponent,
  stopComponent,
} from '../../../src/lab/cluster/index.js';
import { readPod } from '../../../src/lab/cluster/kube.js';
import { processAlive } from '../../../src/lab/cluster/supervisor.js';
import { listNetns, loadLab } from '../../../src/lab/index.js';
import { connectInNetns, listenInNetns, NetnsHandle } from '../../../src/sys/index.js';
import { missingNodeFlags } from '../../../src/ztunnel/heap.js';
import { istioPodOf } from '../../helpers/istio-cgroup.js';
import { run, uniqueSubnet } from '../../helpers/netns.js';
import { CONDITION_DEADLINE_MS } from '../../helpers/wait.js';
import { ambit } from '../../lab/cli.js';

const MODE = 'istio.io/dataplane-mode';
const ANNOTATION = 'ambient.istio.io/redirection';
const lab = `tc${randomBytes(3).toString('hex')}`;
const layout = new ClusterLayout(lab);
let core: CoreV1Api;
let pids: number[] = [];

function cidrs(): string[] {
  const pods = uniqueSubnet();
  let nodes = uniqueSubnet();
  while (nodes.cidr === pods.cidr) nodes = uniqueSubnet();
  return ['--node-cidr', nodes.cidr, '--pod-cidr', pods.cidr, '--node-mask', '26'];
}

const podNs = (ns: string, name: string) => `ambit-${lab}-pod-${ns}_${name}`;

async function pod(ns: string, name: string): Promise<V1Pod> {
  return core.readNamespacedPod({ namespace: ns, name });
}

async function addPod(ns: string, name: string, node: string, ...extra: string[]): Promise<V1Pod> {
  const r = await ambit(['lab', 'pod', 'add', '--name', lab, '--node', node, ...extra, `${ns}/${name}`]);
  assert.equal(r.code, 0, r.stderr);
  return pod(ns, name);
}

/** kubectl against the lab's API server; resolves (code null) when it did not finish within 90 s. */
function kubectl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'kubectl',
      ['--kubeconfig', layout.kubeconfig, ...args],
      { timeout: 90_000, encoding: 'utf8' },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
    );
  });
}

/** What the seed checks inside a pod: its mangle/nat rules, its listeners (with owner), its annotation. */
async function enrollment(ns: string, name: string) {
  const netns = podNs(ns, name);
  const rules = run('ip', ['netns', 'exec', netns, 'iptables-save']);
  const listeners = run('ip', ['netns', 'exec', netns, 'ss', '-ntlpH']);
  const annotation = (await pod(ns, name)).metadata?.annotations?.[ANNOTATION];
  return { rules, listeners, annotation };
}

function ztunnelPid(node: string): number {
  return clusterStatus(loadLab(lab)).find((c) => c.name === `ztunnel-${node}`)!.pid!;
}

function assertEnrolled(e: Awaited<ReturnType<typeof enrollment>>, node: string): void {
  assert.match(e.rules, /-A ISTIO_PRERT .*-j TPROXY --on-port 15006/);
  assert.match(e.rules, /-A ISTIO_OUTPUT .*-j REDIRECT --to-ports 15001/);
  const pid = ztunnelPid(node);
  for (const addr of ['\\*:15001', '\\*:15006', '\\*:15008', '127\\.0\\.0\\.1:15080']) {
    assert.match(e.listeners, new RegExp(`${addr} .*pid=${pid},`), `listener ${addr} of ztunnel pid ${pid}`);
  }
  assert.equal(e.annotation, 'enabled');
}

function assertNotEnrolled(e: Awaited<ReturnType<typeof enrollment>>): void {
  assert.doesNotMatch(e.rules, /ISTIO_/);
  assert.doesNotMatch(e.listeners, /:1500[168]\b|:15080\b/);
  assert.equal(e.annotation, undefined);
}

/** Polls `check` until it stops throwing or `ms` pass; the last failure is the test's failure. */
async function eventually(ms: number, check: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

async function labelNamespace(ns: string, value: string | null): Promise<void> {
  await core.patchNamespace(
    { name: ns, body: { metadata: { labels: { [MODE]: value } } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

/** POSTs `body` to http://ip:8000/post from inside `fromNetns`; resolves to httpbin's echoed `data`. */
function post(fromNetns: string, ip: string, body: string): Promise<string> {
  const netns = NetnsHandle.open(`/var/run/netns/${fromNetns}`);
  return new Promise<string>((resolve, reject) => {
    const req = request(
      {
        method: 'POST',
        path: '/post',
        headers: { host: `${ip}:8000`, 'content-length': Buffer.byteLength(body) },
        createConnection: () => connectInNetns(netns, { host: ip, port: 8000 }),
        timeout: 10_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => {
          text += d;
        });
        res.on('end', () => resolve((JSON.parse(text) as { data: string }).data));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('no answer from httpbin')));
    req.end(body);
  }).finally(() => netns.close());
}

before(async () => {
  const up = await ambit(['lab', 'up', '--name', lab, '--nodes', '2', ...cidrs()]);
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, new RegExp(`kubeconfig: ${layout.kubeconfig}`));
  core = adminClient(lab);
  pids = clusterStatus(loadLab(lab)).map((c) => c.pid!);
  await core.createNamespace({ body: { metadata: { name: 'mesh', labels: { [MODE]: 'ambient' } } } });
});

after(async () => {
  await clusterDown(lab);
});

describe('lab cluster', () => {
  test('up starts the API server, the control plane and per node agent, ztunnel and kubelet; Node objects exist', async () => {
    const status = clusterStatus(loadLab(lab));
    assert.deepEqual(
      status.map((c) => `${c.name}:${c.up}`),
      [
        'apiserver',
        'controlplane',
        'agent-n1',
        'ztunnel-n1',
        'kubelet-n1',
        'agent-n2',
        'ztunnel-n2',
        'kubelet-n2',
      ].map((n) => `${n}:true`),
    );
    for (const c of status) assert.ok(processAlive(c.pid!), c.name);
    // The agent and ztunnel run inside their node's netns, the others on the host.
    const nodeInode = (node: string) =>
      `net:[${run('stat', ['-L', '-c', '%i', `/var/run/netns/ambit-${lab}-${node}`]).trim()}]`;
    const netnsOf = (pid: number) => run('readlink', [`/proc/${pid}/ns/net`]).trim();
    for (const c of status.filter((s) => s.component === 'agent' || s.component === 'ztunnel'))
      assert.equal(netnsOf(c.pid!), nodeInode(c.node!), c.name);
    // Each ztunnel runs with its heap flags (ztunnel/heap.ts), so it does not warn that it lacks them.
    for (const c of status.filter((s) => s.component === 'ztunnel')) {
      const argv = readFileSync(`/proc/${c.pid!}/cmdline`, 'utf8').split('\0');
      assert.deepEqual(missingNodeFlags(argv), [], `${c.name}: ${argv.join(' ')}`);
    }
    // Each names itself after its role (runtime/process-name.ts): what `ps -e`, `top` and `ss -p` show.
    const comm: Record<string, string> = {
      apiserver: 'ambit-apiserver',
      controlplane: 'pilot-discovery',
      agent: 'install-cni',
      ztunnel: 'ztunnel',
      kubelet: 'ambit-kubelet',
    };
    for (const c of status)
      assert.equal(readFileSync(`/proc/${c.pid!}/comm`, 'utf8').trim(), comm[c.component], c.name);
    const nodes = await core.listNode();
    assert.deepEqual(nodes.items.map((n) => n.metadata?.name).sort(), ['n1', 'n2']);
    const logs = await ambit(['lab', 'logs', '--name', lab, 'ztunnel', '--node', 'n2']);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /ztunnel::inpod::workloadmanager: handling new stream/);
    assert.doesNotMatch(logs.stdout, /without the ztunnel heap flags/);
  });

  test("each component talks to the API server as its own identity with its chart's rights, not as the admin", async () => {
    const fromFile = (path: string): KubeConfig => {
      const kc = new KubeConfig();
      kc.loadFromFile(path);
      return kc;
    };
    const whoami = async (kc: KubeConfig): Promise<string> =>
      (await kc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} })).status?.userInfo
        ?.username ?? '';
    const refused = async (kc: KubeConfig): Promise<number> => {
      try {
        await kc.makeApiClient(CoreV1Api).deleteNamespace({ name: 'mesh' });
        return 200;
      } catch (err) {
        return err instanceof ApiException ? err.code : -1;
      }
    };
    const identities: [string, KubeConfig, string][] = [
      ['operator', fromFile(layout.kubeconfig), 'lab-admin'],
      [
        'control plane',
        serviceAccountConfig(lab, layout.controlPlaneToken, 'istiod'),
        'system:serviceaccount:istio-system:istiod',
      ],
    ];
    for (const node of ['n1', 'n2']) {
      // The agent's and the plugin's files use the in-node address; the host reaches it the same way.
      const viaHost = (path: string): KubeConfig => {
        const kc = fromFile(path);
        const server = fromFile(layout.kubeconfig).getCurrentCluster()!.server;
        const out = new KubeConfig();
        out.loadFromOptions({
          clusters: [{ ...kc.getCurrentCluster()!, server }],
          users: kc.users,
          contexts: kc.contexts,
          currentContext: kc.currentContext,
        });
        return out;
      };
      identities.push(
        ['agent', viaHost(layout.agentKubeconfig(node)), 'system:serviceaccount:istio-system:istio-cni'],
        [
          'CNI plugin',
          viaHost(`${layout.agentRunDir(node)}/${PLUGIN_KUBECONFIG_NAME}`),
          'system:serviceaccount:istio-system:istio-cni',
        ],
        ['kubelet', fromFile(layout.kubeletKubeconfig(node)), `system:node:${node}`],
      );
    }
    for (const [what, kc, user] of identities) {
      assert.equal(await whoami(kc), user, what);
      if (user !== 'lab-admin') assert.equal(await refused(kc), 403, `${what} may not delete a namespace`);
    }
  });

  test('a pod in an ambient namespace is enrolled before its sandbox creation returns', async () => {
    const a = await addPod('mesh', 'a', 'n1');
    assert.equal(a.status?.phase, 'Running');
    assertEnrolled(await enrollment('mesh', 'a'), 'n1');
    const agentLog = readFileSync(layout.logFile({ component: 'agent', node: 'n1' }), 'utf8');
    assert.match(agentLog, /pod added to the mesh pod=mesh\/a/);
    const zt = readFileSync(layout.logFile({ component: 'ztunnel', node: 'n1' }), 'utf8');
    assert.match(zt, new RegExp(`pod WorkloadUid\\("${a.metadata?.uid}"\\) received netns, starting proxy`));
  });

  test('labelling a namespace enrolls its running pods; un-labelling removes them', async () => {
    await core.createNamespace({ body: { metadata: { name: 'later' } } });
    await addPod('later', 'web', 'n2', '--image', 'httpbin');
    assertNotEnrolled(await enrollment('later', 'web'));
    await labelNamespace('later', 'ambient');
    await eventually(CONDITION_DEADLINE_MS, async () =>
      assertEnrolled(await enrollment('later', 'web'), 'n2'),
    );
    await labelNamespace('later', null);
    await eventually(CONDITION_DEADLINE_MS, async () => assertNotEnrolled(await enrollment('later', 'web')));
  });

  test('with ztunnel stopped the sandbox fails (pod Pending, CNI error as reason), then succeeds', async () => {
    assert.equal(await stopComponent(lab, { component: 'ztunnel', node: 'n2' }), true);
    try {
      const r = await ambit(['lab', 'pod', 'add', '--name', lab, '--node', 'n2', '--no-wait', 'mesh/late']);
      assert.equal(r.code, 0, r.stderr);
      await eventually(15_000, async () => {
        const p = await pod('mesh', 'late');
        assert.equal(p.status?.phase, 'Pending');
        assert.equal(p.status?.reason, 'FailedCreatePodSandBox');
        assert.match(p.status?.message ?? '', /ambit-cni.*CNI code 11/);
      });
      assert.equal(listNetns().includes(podNs('mesh', 'late')), false, 'no sandbox left by a failed ADD');
    } finally {
      await startComponent(lab, { component: 'ztunnel', node: 'n2' });
    }
    await eventually(30_000, async () => assert.equal((await pod('mesh', 'late')).status?.phase, 'Running'));
    assertEnrolled(await enrollment('mesh', 'late'), 'n2');
  });

  test('restarting the agent keeps traffic flowing through both proxies and reconciles deleted pods', async () => {
    const srv = await addPod('mesh', 'srv', 'n2', '--image', 'httpbin');
    const gone = await addPod('mesh', 'gone', 'n1');
    const from = podNs('mesh', 'a');
    const ip = srv.status!.podIP!;
    // Outbound lines name the HBONE hop (dst.addr=<ip>:15008) and the app (dst.hbone_addr); inbound ones the app.
    const accessLines = (node: string) =>
      readFileSync(layout.logFile({ component: 'ztunnel', node }), 'utf8')
        .split('\n')
        .filter(
          (l) =>
            l.includes('\taccess\tconnection complete\t') &&
            (l.includes(`dst.hbone_addr=${ip}:8000`) || l.includes(`dst.addr=${ip}:8000`)),
        );
    const before1 = accessLines('n1').length;
    const before2 = accessLines('n2').length;
    assert.equal(await post(from, ip, 'before'), 'before');

    await stopComponent(lab, { component: 'agent', node: 'n1' });
    try {
      const payload = randomBytes(48 * 1024).toString('hex');
      assert.equal(await post(from, ip, payload), payload);
      const del = await ambit(['lab', 'pod', 'del', '--name', lab, 'mesh/gone']);
      assert.equal(del.code, 0, del.stderr);
    } finally {
      await startComponent(lab, { component: 'agent', node: 'n1' });
    }
    assert.equal(await post(from, ip, 'after'), 'after');
    await eventually(CONDITION_DEADLINE_MS, async () => {
      assert.ok(accessLines('n1').length >= before1 + 3, 'outbound through ztunnel on n1');
      assert.ok(accessLines('n2').length >= before2 + 3, 'inbound through ztunnel on n2');
    });
    assert.ok(
      accessLines('n1')
        .slice(before1)
        .every(
          (l) =>
            l.includes('direction="outbound"') &&
            l.includes(`dst.addr=${ip}:15008`) &&
            // logged only for mutual TLS
            l.includes('src.identity="spiffe://cluster.local/ns/mesh/sa/default"'),
        ),
      'HBONE with certificates from the lab control plane',
    );
    assert.ok(
      accessLines('n2')
        .slice(before2)
        .every((l) => l.includes('direction="inbound"')),
    );
    await eventually(CONDITION_DEADLINE_MS, async () => {
      const zt = readFileSync(layout.logFile({ component: 'ztunnel', node: 'n1' }), 'utf8');
      assert.match(
        zt,
        new RegExp(`pod WorkloadUid\\("${gone.metadata?.uid}"\\) not in snapshot, stopping proxy`),
      );
    });
    assertEnrolled(await enrollment('mesh', 'a'), 'n1');
  });

  test('restarting the control plane keeps mesh traffic flowing; both ztunnels reconnect to it', async () => {
    const srv = await pod('mesh', 'srv');
    const ip = srv.status!.podIP!;
    const ztLog = (node: string) => readFileSync(layout.logFile({ component: 'ztunnel', node }), 'utf8');
    const lost = (node: string) => ztLog(node).split('xds stream lost').length - 1;
    const lostBefore = ['n1', 'n2'].map(lost);
    assert.equal(await post(podNs('mesh', 'a'), ip, 'before restart'), 'before restart');
    assert.equal(await stopComponent(lab, { component: 'controlplane' }), true);
    try {
      // Certificates and workloads are cached: traffic does not need the control plane.
      assert.equal(await post(podNs('mesh', 'a'), ip, 'while down'), 'while down');
    } finally {
      await startComponent(lab, { component: 'controlplane' });
    }
    await eventually(30_000, async () => {
      for (const [i, node] of ['n1', 'n2'].entries()) {
        assert.ok(lost(node) > lostBefore[i]!, `ztunnel ${node} saw the stream drop`);
        const after = ztLog(node).slice(ztLog(node).lastIndexOf('xds stream lost'));
        assert.match(after, /ztunnel::xds::client: connecting .*known=[1-9]/, `ztunnel ${node} reconnected`);
      }
    });
    assert.equal(await post(podNs('mesh', 'a'), ip, 'after restart'), 'after restart');
  });

  test('a ztunnel whose readiness port is taken exits, and `lab start` fails at once naming it and EADDRINUSE', async () => {
    assert.equal(await stopComponent(lab, { component: 'ztunnel', node: 'n2' }), true);
    // A leftover that accepts on 15021 and never answers: the lab's readiness probe must not wait on it.
    const node = NetnsHandle.open(`/var/run/netns/ambit-${lab}-n2`);
    const held = new Set<Socket>();
    const holder = await listenInNetns(node, { host: '::', port: 15021 });
    holder.on('connection', (s: Socket) => {
      held.add(s);
      s.on('error', () => {});
    });
    try {
      // The deadline only stops a hung `lab start`; exiting takes a second or two.
      const r = await ambit(['lab', 'start', '--name', lab, 'ztunnel', '--node', 'n2'], {
        timeoutMs: 90_000,
      });
      assert.notEqual(r.code, null, `lab start still running after 90 s: ${r.stdout}${r.stderr}`);
      assert.notEqual(r.code, 0, r.stdout);
      assert.match(r.stderr, /ztunnel-n2 \(pid \d+\) exited; last lines of /);
      assert.match(r.stderr, /cannot serve readiness on \[::\]:15021: EADDRINUSE/);
      const status = clusterStatus(loadLab(lab)).find((c) => c.name === 'ztunnel-n2')!;
      assert.equal(status.up, false, 'lab status reports the failed ztunnel as down');
    } finally {
      for (const s of held) s.destroy();
      await new Promise((r) => holder.close(r));
      node.close();
      // A ztunnel that failed to exit would still hold the rest of its ports.
      await stopComponent(lab, { component: 'ztunnel', node: 'n2' });
      await startComponent(lab, { component: 'ztunnel', node: 'n2' });
    }
    // With the port free again it starts and passes its readiness check (startComponent waits for it).
    assert.equal(clusterStatus(loadLab(lab)).find((c) => c.name === 'ztunnel-n2')!.up, true);
  });

  test('pod status carries hostIPs and podIPs next to hostIP and podIP, as the kubelet writes them', async () => {
    const state = loadLab(lab);
    const a = await pod('mesh', 'a');
    const n1 = state.nodes.find((n) => n.name === 'n1')!;
    // client-node decodes the lists into classes: compare their fields.
    const ips = (list: { ip?: string }[] | undefined) => list?.map((h) => ({ ...h }));
    assert.equal(a.status?.hostIP, n1.ip);
    assert.deepEqual(ips(a.status?.hostIPs), [{ ip: n1.ip }]);
    assert.match(a.status?.podIP ?? '', /^\d+\.\d+\.\d+\.\d+$/);
    assert.deepEqual(ips(a.status?.podIPs), [{ ip: a.status?.podIP }]);
    // The host-network ztunnel pod: the node's address for both.
    const zt = await pod('istio-system', 'ztunnel-n1');
    assert.deepEqual(ips(zt.status?.hostIPs), [{ ip: n1.ip }]);
    assert.deepEqual(ips(zt.status?.podIPs), [{ ip: n1.ip }]);
  });

  test('kubectl delete pod: the kubelet sees deletionTimestamp, stops the pod, runs CNI DEL, then deletes it', async () => {
    const state = loadLab(lab);
    const n1 = state.nodes.find((n) => n.name === 'n1')!;
    const bye = await addPod('mesh', 'bye', 'n1', '--image', 'httpbin');
    const uid = bye.metadata!.uid!;
    const ip = bye.status!.podIP!;
    const record = clusterPod(lab, { namespace: 'mesh', name: 'bye' })!;
    assert.equal(record.pids.length, 2, 'pause and httpbin');
    assert.deepEqual(record.pids.filter(processAlive), record.pids);
    const probes = () => run('ip', ['netns', 'exec', n1.netns, 'ipset', 'list', 'istio-inpod-probes-v4']);
    assert.match(probes(), new RegExp(`^${ip.replaceAll('.', '\\.')} `, 'm'), 'enrolled: probe ipset entry');
    // What a watcher sees, and whether the sandbox still existed when it saw it.
    const seen: { type: string; terminating: boolean; netns: boolean }[] = [];
    const kc = new KubeConfig();
    kc.loadFromFile(layout.kubeconfig);
    const req = await new Watch(kc).watch(
      '/api/v1/namespaces/mesh/pods',
      { fieldSelector: 'metadata.name=bye', resourceVersion: bye.metadata!.resourceVersion },
      (type: string, obj: V1Pod) =>
        seen.push({
          type,
          terminating: obj.metadata?.deletionTimestamp !== undefined,
          netns: listNetns().includes(podNs('mesh', 'bye')),
        }),
      () => {},
    );
    try {
      const del = await kubectl(['delete', 'pod', 'bye', '-n', 'mesh']);
      assert.equal(del.code, 0, `kubectl delete did not finish within 90 s: ${del.stdout}${del.stderr}`);
      assert.match(del.stdout, /pod "bye" deleted/);
      // kubectl returns once the object is gone.
      assert.equal(await readPod(core, 'mesh', 'bye'), undefined);
      await eventually(CONDITION_DEADLINE_MS, async () => assert.equal(seen.at(-1)?.type, 'DELETED'));
    } finally {
      req.abort();
    }
    assert.deepEqual(seen[0], { type: 'MODIFIED', terminating: true, netns: true }, JSON.stringify(seen));
    assert.deepEqual(seen.at(-1), { type: 'DELETED', terminating: true, netns: false }, JSON.stringify(seen));
    assert.deepEqual(record.pids.filter(processAlive), [], 'the pod processes are gone');
    assert.equal(existsSync(record.cgroup), false, 'the pod cgroup is gone');
    assert.equal(clusterPod(lab, { namespace: 'mesh', name: 'bye' }), undefined, 'no sandbox record');
    const kubelet = readFileSync(layout.logFile({ component: 'kubelet', node: 'n1' }), 'utf8');
    assert.match(kubelet, /pod terminating, stopping its sandbox pod=mesh\/bye grace_period_s=30/);
    await eventually(CONDITION_DEADLINE_MS, async () => {
      assert.doesNotMatch(probes(), new RegExp(`^${ip.replaceAll('.', '\\.')} `, 'm'), 'probe entry removed');
      const zt = readFileSync(layout.logFile({ component: 'ztunnel', node: 'n1' }), 'utf8');
      assert.match(zt, new RegExp(`pod delete request, draining proxy.*${uid}`), 'ZDS proxy removed');
    });
  });

  test('kubectl delete --grace-period=0 --force removes the pod at once; the kubelet then removes its sandbox', async () => {
    const forced = await addPod('mesh', 'forced', 'n2');
    const record = clusterPod(lab, { namespace: 'mesh', name: 'forced' })!;
    const del = await kubectl(['delete', 'pod', 'forced', '-n', 'mesh', '--grace-period=0', '--force']);
    assert.equal(del.code, 0, del.stderr);
    assert.match(del.stdout, /pod "forced" force deleted/);
    assert.equal(await readPod(core, 'mesh', 'forced'), undefined);
    await eventually(CONDITION_DEADLINE_MS, async () => {
      assert.equal(listNetns().includes(podNs('mesh', 'forced')), false, 'netns removed');
      assert.deepEqual(record.pids.filter(processAlive), []);
      const zt = readFileSync(layout.logFile({ component: 'ztunnel', node: 'n2' }), 'utf8');
      assert.match(zt, new RegExp(`pod delete request, draining proxy.*${forced.metadata!.uid}`));
    });
  });

  test('kubectl --kubeconfig <lab kubeconfig> get pods -A lists the pods with their IPs', async () => {
    const out = run('kubectl', ['--kubeconfig', layout.kubeconfig, 'get', 'pods', '-A', '-o', 'wide']);
    const { items } = await core.listPodForAllNamespaces();
    assert.ok(items.length >= 4);
    for (const p of items) {
      assert.match(
        out,
        new RegExp(
          `${p.metadata?.namespace}\\s+${p.metadata?.name}\\s+1/1\\s+Running .*${(p.status?.podIP ?? '?').replaceAll('.', '\\.')}\\s+${p.spec?.nodeName}`,
        ),
      );
    }
    assert.doesNotMatch(out, /\bgone\b/);
  });

  test("pod processes sit in kubepods/besteffort/pod<uid>/<container id>, as containerd puts them; ambit's agent and Istio's pattern both attribute them", async () => {
    const { items } = await core.listPodForAllNamespaces();
    const records = items
      .filter((p) => !p.spec?.hostNetwork)
      .map((p) => clusterPod(lab, { namespace: p.metadata!.namespace!, name: p.metadata!.name! })!);
    assert.ok(
      records.some((r) => r.appContainerId !== undefined),
      'some pod runs an app container',
    );
    for (const r of records) {
      const containers = [r.containerId, ...(r.appContainerId ? [r.appContainerId] : [])];
      assert.equal(r.pids.length, containers.length, `${r.namespace}/${r.name}: pause + app`);
      r.pids.forEach((pid, i) => {
        const text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
        const path = /^0::(.*)$/m.exec(text)?.[1] ?? '';
        assert.equal(path, `/ambit/${lab}/kubepods/besteffort/pod${r.uid}/${containers[i]}`, text);
        assert.match(containers[i]!, /^[0-9a-f]{64}$/);
        assert.deepEqual(podFromCgroupFile(text), { uid: r.uid, containerId: containers[i] });
        assert.deepEqual(istioPodOf(path), { uid: r.uid, containerId: containers[i] });
      });
    }
  });

  test('down stops every process and leaves no netns, process, cgroup or file; a second down is a no-op', async () => {
    const podPids = cgroupPids(labCgroup(lab));
    assert.ok(podPids.length >= 4, 'pause and app processes sit in the pod cgroups');
    const down = await ambit(['lab', 'down', '--name', lab]);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(
      listNetns().filter((n) => n.startsWith(`ambit-${lab}-`)),
      [],
    );
    assert.deepEqual([...pids, ...podPids].filter(processAlive), []);
    assert.deepEqual(labProcesses(lab), []);
    assert.equal(existsSync(labCgroup(lab)), false);
    assert.equal(existsSync(layout.dir), false);
    const again = await ambit(['lab', 'down', '--name', lab]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /not running/);
  });
});
