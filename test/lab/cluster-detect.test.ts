/**
 * Whether a lab is a cluster lab comes from what the lab recorded (its API server's kubeconfig), not
 * from the stand-in API server's pid file: with the kubeconfig pointing at an API server the lab did
 * not start (here one started by the test, as a real kube-apiserver would be), `lab pod add`,
 * `lab exec` and `doctor --lab` still treat the lab as a cluster (issue 13).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { labTarget } from '../../src/doctor/index.js';
import { type ApiServer, startApiServer } from '../../src/lab/apiserver/index.js';
import { adminClient, ClusterLayout, isCluster, labKubeconfig } from '../../src/lab/cluster/index.js';
import { ensureNamespace, ztunnelPod } from '../../src/lab/cluster/kube.js';
import type { SandboxRecord } from '../../src/lab/cluster/sandbox.js';
import { stateDir } from '../../src/lab/names.js';
import { writeState } from '../../src/lab/state.js';
import { TestNetns } from '../helpers/netns.js';
import { ambit } from './cli.js';

const lab = `td${randomBytes(3).toString('hex')}`;
const layout = new ClusterLayout(lab);
const apiDir = mkdtempSync(join(tmpdir(), 'ambit-labdetect-'));
let api: ApiServer | undefined;
let nodeNs: TestNetns;
let podNs: TestNetns;

/** kubectl against the lab's (the test's) API server, as a user of the lab would run it. */
async function kubectl(args: string[]): Promise<string> {
  // Async: the API server answering it runs in this process.
  const { stdout } = await promisify(execFile)('kubectl', ['--kubeconfig', layout.kubeconfig, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return stdout;
}

before(async () => {
  nodeNs = new TestNetns();
  podNs = new TestNetns();
  writeState({
    version: 1,
    name: lab,
    createdAt: new Date().toISOString(),
    nodeCidr: '10.250.0.0/24',
    podCidr: '10.251.0.0/16',
    nodeMask: 24,
    pluginDirs: [],
    fabric: { netns: 'unused', bridge: 'unused' },
    nodes: [
      {
        name: 'n1',
        netns: nodeNs.name,
        netnsPath: nodeNs.path,
        ip: '10.250.0.1',
        podCidr: '10.251.0.0/24',
        podGateway: '10.251.0.1',
      },
    ],
    pods: [],
  });
  // An API server this lab did not start: no pid file anywhere, only the kubeconfig the lab records.
  api = await startApiServer({
    listen: '127.0.0.1:0',
    stateFile: join(apiDir, 'state.json'),
    kubeconfigPath: layout.kubeconfig,
  });
});

after(async () => {
  await api?.close();
  podNs?.remove();
  nodeNs?.remove();
  rmSync(stateDir(lab), { recursive: true, force: true });
  rmSync(apiDir, { recursive: true, force: true });
});

describe('cluster lab detection', () => {
  test('a lab with an API server kubeconfig is a cluster lab without any pid file', () => {
    assert.equal(existsSync(layout.pidFile({ component: 'apiserver' })), false);
    assert.equal(labKubeconfig(lab), layout.kubeconfig);
    assert.equal(isCluster(lab), true);
  });

  test('lab pod add writes the pod to that API server', async () => {
    const r = await ambit([
      ...['lab', 'pod', 'add', '--name', lab, '--node', 'n1', '--image', 'httpbin'],
      ...['--label', 'tier=web', '--no-wait', 'shop/web'],
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /pod shop\/web on n1: \(pending\) \(Pending\)/);
    const pod = api!.store.get(
      (await import('../../src/lab/apiserver/resources.js')).findResource('', 'v1', 'pods')!,
      'shop',
      'web',
    );
    assert.equal(pod.spec?.['nodeName'], 'n1');
    assert.equal(pod.metadata.labels?.['tier'], 'web');
  });

  test("lab exec and doctor --lab find the pod's sandbox", async () => {
    // The record a kubelet of this lab writes for the pod's sandbox; its netns is a real one.
    const record: SandboxRecord = {
      namespace: 'shop',
      name: 'web',
      uid: 'uid-web',
      app: 'httpbin',
      containerId: 'c'.repeat(64),
      netns: podNs.name,
      netnsPath: podNs.path,
      ip: '10.251.0.7',
      cniResult: { cniVersion: '1.1.0' },
      cgroup: '/sys/fs/cgroup/unused',
      pids: [],
    };
    mkdirSync(layout.sandboxDir('n1'), { recursive: true });
    writeFileSync(join(layout.sandboxDir('n1'), 'uid-web.json'), JSON.stringify(record));
    const r = await ambit(['lab', 'exec', '--name', lab, 'shop/web', '--', 'ip', 'netns', 'identify']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), podNs.name);
    const target = labTarget({
      lab,
      pod: { namespace: 'shop', name: 'web' },
      admin: { host: '127.0.0.1', port: 15000 },
      backend: 'iptables',
      inbound: 'tproxy',
      probe: { host: '169.254.7.127', port: 15021 },
    });
    assert.equal(target.podNetns, podNs.path);
    assert.deepEqual(target.podIps, ['10.251.0.7']);
    assert.equal(target.nodeNetns, nodeNs.path);
    assert.equal(target.kubeconfig, layout.kubeconfig);
  });

  test('lab status counts the pods the API server has, as kubectl lists them, with each sandbox', async () => {
    const add = await ambit([
      'lab',
      'pod',
      'add',
      '--name',
      lab,
      '--node',
      'n1',
      '--no-wait',
      'default/sleep',
    ]);
    assert.equal(add.code, 0, add.stderr);
    // The node proxy's pod: host network, no sandbox (the lab's clusterUp writes one per node).
    await ensureNamespace(adminClient(lab), 'istio-system');
    await adminClient(lab).createNamespacedPod({
      namespace: 'istio-system',
      body: ztunnelPod({ name: 'n1' }),
    });
    const listed = await kubectl(['get', 'pods', '-A', '--no-headers', '-o', 'name']);
    const count = listed.split('\n').filter(Boolean).length;
    assert.equal(count, 3, listed);

    const r = await ambit(['lab', 'status', '--name', lab]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Lab ${lab}: 1 node\\(s\\), ${count} pod\\(s\\)$`, 'm'));
    assert.match(
      r.stdout,
      new RegExp(`^ {2}n1 .* ${count} +${nodeNs.name}$`, 'm'),
      'the node counts its pods',
    );
    assert.match(r.stdout, /^ {2}POD +NODE +IP +STATUS +NETNS$/m);
    assert.match(r.stdout, /^ {2}default\/sleep +n1 +- +Pending +\(no sandbox\)$/m);
    assert.match(r.stdout, /^ {2}istio-system\/ztunnel-n1 +n1 +- +Pending +\(host network\)$/m);
    assert.match(r.stdout, new RegExp(`^ {2}shop/web +n1 +- +Pending +${podNs.name}$`, 'm'));

    const json = await ambit(['lab', 'status', '--name', lab, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const shown = JSON.parse(json.stdout) as { pods: { name: string; netns?: string; present: boolean }[] };
    assert.deepEqual(
      shown.pods.map((p) => [p.name, p.netns, p.present]),
      [
        ['sleep', undefined, false],
        ['ztunnel-n1', undefined, false],
        ['web', podNs.name, true],
      ],
    );
  });

  test('lab exec of a pod without a sandbox names the pods that have one, not "pods: none"', async () => {
    const r = await ambit(['lab', 'exec', '--name', lab, 'default/sleep', '--', 'true']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /has no running pod default\/sleep \(pods with a sandbox: shop\/web\); see 'ambit lab status --name \w+'.*\[LAB_POD_NOT_FOUND\]/,
    );
    assert.doesNotMatch(r.stderr, /pods: none/);
  });

  test('with its API server down, lab status shows the sandboxes and says why', async () => {
    await api!.close();
    api = undefined;
    const r = await ambit(['lab', 'status', '--name', lab]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /^warning: the lab's API server did not answer \(.+\); pods shown are the sandboxes its kubelets made$/m,
    );
    assert.match(r.stdout, new RegExp(`^Lab ${lab}: 1 node\\(s\\), 1 pod\\(s\\)$`, 'm'));
    assert.match(r.stdout, new RegExp(`^ {2}shop/web +n1 +10\\.251\\.0\\.7 +Unknown +${podNs.name}$`, 'm'));
  });

  test('without the kubeconfig (a network-only lab) it is not a cluster lab', () => {
    rmSync(layout.kubeconfig);
    assert.equal(labKubeconfig(lab), undefined);
    assert.equal(isCluster(lab), false);
  });
});
