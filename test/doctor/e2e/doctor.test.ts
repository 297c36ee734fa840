/**
 * `ambit doctor` against a real one-node lab with LabMesh (a real `ambit ztunnel` process in the
 * node netns, the seed's rules, ZDS Add) and the lab API server for the annotation check (the test
 * plays the agent's part of annotating enrolled pods). Pods: ambient-demo/sleep and httpbin
 * (enrolled), ambient-demo/busy (15006 taken before enrolment), plain/loner (namespace not
 * labelled, never enrolled). Also /config_dump as the doctor reads it from the node netns.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { adminGet } from '../../../src/doctor/admin-client.js';
import { type CheckId, type DoctorReport, labTarget, runDoctor } from '../../../src/doctor/index.js';
import { type ApiServer, startApiServer } from '../../../src/lab/apiserver/index.js';
import { findResource } from '../../../src/lab/apiserver/resources.js';
import { createPod, type LabPod, labDown, labUp } from '../../../src/lab/index.js';
import { createRedirector } from '../../../src/redirect/index.js';
import { connected, connectInNetns, listenInNetns, NetnsHandle } from '../../../src/sys/index.js';
import type { ConfigDump } from '../../../src/ztunnel/admin/config-dump.js';
import { LabMesh } from '../../helpers/lab-mesh.js';
import { run, uniqueSubnet } from '../../helpers/netns.js';
import { eventually } from '../../helpers/wait.js';

const MAIN = new URL('../../../src/cli/main.js', import.meta.url).href;
const ENTRY = `const { main } = await import(${JSON.stringify(MAIN)}); process.exitCode = await main(process.argv.slice(1));`;
const ADMIN = { host: 'localhost', port: 15000 };
const R = {
  namespaces: findResource('', 'v1', 'namespaces')!,
  pods: findResource('', 'v1', 'pods')!,
};

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', ENTRY, 'doctor', ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const status = (report: DoctorReport) => Object.fromEntries(report.checks.map((c) => [c.id, c.status]));
const check = (report: DoctorReport, id: CheckId) => report.checks.find((c) => c.id === id)!;

describe('ambit doctor on a lab pod', () => {
  const lab = `td${randomBytes(4).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'ambit-doctor-'));
  const kubeconfig = join(dir, 'kubeconfig');
  let api: ApiServer;
  let mesh: LabMesh | undefined;
  const pods = new Map<string, LabPod>();
  const handles: NetnsHandle[] = [];
  const servers: Server[] = [];

  const target = (ref: string) => {
    const [namespace, name] = ref.split('/') as [string, string];
    return labTarget({
      lab,
      pod: { namespace, name },
      admin: ADMIN,
      kubeconfig,
      backend: 'iptables',
      inbound: 'tproxy',
    });
  };
  const doctor = (ref: string) => runDoctor(target(ref));

  let podCidr = '';

  before(async () => {
    const podNet = uniqueSubnet();
    podCidr = podNet.cidr;
    let nodeNet = uniqueSubnet();
    while (nodeNet.cidr === podNet.cidr) nodeNet = uniqueSubnet();
    await labUp({ name: lab, nodes: 1, nodeCidr: nodeNet.cidr, podCidr: podNet.cidr, nodeMask: 26 });
    for (const ref of ['ambient-demo/sleep', 'ambient-demo/httpbin', 'ambient-demo/busy', 'plain/loner']) {
      const [namespace, name] = ref.split('/') as [string, string];
      pods.set(ref, await createPod(lab, 'n1', { namespace, name }));
    }
    api = await startApiServer({ kubeconfigPath: kubeconfig });
    api.store.create(R.namespaces, undefined, {
      metadata: { name: 'ambient-demo', labels: { 'istio.io/dataplane-mode': 'ambient' } },
    });
    api.store.create(R.namespaces, undefined, { metadata: { name: 'plain' } });
    for (const [ref, pod] of pods) {
      const enrolled = pod.namespace === 'ambient-demo';
      api.store.create(R.pods, pod.namespace, {
        metadata: {
          name: pod.name,
          ...(enrolled ? { annotations: { 'ambient.istio.io/redirection': 'enabled' } } : {}),
        },
        spec: { nodeName: 'n1', containers: [{ name: 'app', image: ref }] },
      });
    }
    mesh = await LabMesh.start((await import('../../../src/lab/index.js')).loadLab(lab), {
      dir: join(dir, 'mesh'),
    });
    await mesh.enroll(pods.get('ambient-demo/sleep')!, 'sleep');
    await mesh.enroll(pods.get('ambient-demo/httpbin')!, 'httpbin');
    // busy: an application already holds 15006 without SO_REUSEPORT, so ztunnel cannot bind it.
    const busy = NetnsHandle.open(pods.get('ambient-demo/busy')!.netnsPath);
    handles.push(busy);
    servers.push(await listenInNetns(busy, { host: '0.0.0.0', port: 15006 }));
    await assert.rejects(mesh.enroll(pods.get('ambient-demo/busy')!, 'busy'), { code: 'ZDS_NACK' });
    // One HBONE connection sleep -> httpbin, so ztunnel holds workload certificates for the dump.
    const httpbin = pods.get('ambient-demo/httpbin')!;
    const httpbinNs = NetnsHandle.open(httpbin.netnsPath);
    handles.push(httpbinNs);
    const app = await listenInNetns(httpbinNs, { host: '0.0.0.0', port: 8000 });
    servers.push(app);
    app.on('connection', (s: Socket) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    const sleepNs = NetnsHandle.open(pods.get('ambient-demo/sleep')!.netnsPath);
    handles.push(sleepNs);
    const sock = await connected(connectInNetns(sleepNs, { host: httpbin.ip, port: 8000 }));
    const echoed = await new Promise<string>((resolve, reject) => {
      sock.once('data', (d: Buffer) => resolve(d.toString()));
      sock.once('error', reject);
      sock.write('ping');
    });
    sock.destroy();
    assert.equal(echoed, 'ping');
  });

  after(async () => {
    await mesh?.stop();
    await api?.close();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    for (const h of handles) h.close();
    await labDown(lab);
    rmSync(dir, { recursive: true, force: true });
  });

  test('/config_dump from the node netns: enrolled pods Up, the busy one Pending, certificates without keys', async () => {
    const node = (await import('../../../src/lab/index.js')).loadLab(lab).nodes[0]!;
    const body = await adminGet(node.netnsPath, ADMIN, '/config_dump');
    const dump = JSON.parse(body) as ConfigDump;
    const byName = Object.fromEntries(
      Object.entries(dump.workloadState).map(([uid, e]) => [e.info.name, { uid, state: e.state }]),
    );
    assert.deepEqual(byName['sleep'], { uid: pods.get('ambient-demo/sleep')!.uid, state: 'Up' });
    assert.equal(byName['httpbin']?.state, 'Up');
    assert.equal(byName['busy']?.state, 'Pending');
    assert.equal(byName['loner'], undefined);
    assert.equal(dump.config['proxyMode'], 'Shared');
    assert.equal(dump.config['packetMark'], 1337);
    const identities = dump.certificates.filter((c) => c.state === 'Available').map((c) => c.identity);
    assert.ok(identities.includes('spiffe://cluster.local/ns/ambient-demo/sa/sleep'), identities.join());
    assert.ok(dump.certificates.every((c) => c.certChain.length === 0 || c.rootCerts.length > 0));
    const decoded = dump.certificates.flatMap((c) =>
      [...c.certChain, ...c.rootCerts].map((x) => Buffer.from(x.pem, 'base64').toString()),
    );
    for (const text of [body, ...decoded]) assert.ok(!text.includes('PRIVATE KEY'));
  });

  test('a healthy enrolled pod passes all five checks, and the CLI exits 0', async () => {
    // Counts what the node forwards from the pod to anything but its pods (bound off the node); removed below.
    const node = (await import('../../../src/lab/index.js')).loadLab(lab).nodes[0]!;
    const sleep = pods.get('ambient-demo/sleep')!;
    const counter = [
      '-s',
      `${sleep.ip}/32`,
      '!',
      '-d',
      podCidr,
      '-m',
      'comment',
      '--comment',
      'ambit-doctor-test',
    ];
    await run('nsenter', [`--net=${node.netnsPath}`, 'iptables', '-w', '-I', 'FORWARD', ...counter]);
    const logMark = mesh!.nodes.get('n1')!.lines.length;
    let report: DoctorReport;
    try {
      report = await doctor('ambient-demo/sleep');
      const forwarded = await run('nsenter', [
        `--net=${node.netnsPath}`,
        'iptables',
        '-w',
        '-L',
        'FORWARD',
        '-v',
        '-x',
        '-n',
      ]);
      const line = forwarded.split('\n').find((l) => l.includes('ambit-doctor-test'));
      assert.match(line ?? '', /^\s*0\s+0\s/, `the node forwarded packets from the pod:\n${forwarded}`);
    } finally {
      await run('nsenter', [`--net=${node.netnsPath}`, 'iptables', '-w', '-D', 'FORWARD', ...counter]);
    }
    // The probe went to an address of the node and ztunnel carried it there: no ERROR in its log.
    const probe = check(report, 'probe');
    const host = /-> ([\d.]+):\d+ /.exec(probe.detail)?.[1];
    const nodeAddrs = await run('nsenter', [`--net=${node.netnsPath}`, 'ip', '-o', 'addr', 'show']);
    assert.ok(host && nodeAddrs.includes(` ${host}/`), `${probe.detail}\n${nodeAddrs}`);
    assert.match(probe.detail, /carried it on to the doctor's listener on the node/);
    const ztunnelLog = mesh!.nodes.get('n1')!;
    await eventually('ztunnel to log the probe', () =>
      ztunnelLog.lines
        .slice(logMark)
        .some((l) => l.includes(`${host}:`) && l.includes('connection complete')),
    );
    const logged = ztunnelLog.lines.slice(logMark);
    assert.deepEqual(
      logged.filter((l) => /\bERROR\b|\terror\t/.test(l)),
      [],
      logged.join('\n'),
    );
    // The seed's `ss -ntlp`: the pod's listeners are owned by ("ztunnel",pid=...), not ("node",...).
    const listeners = check(report, 'listeners');
    const ss = await run('nsenter', [`--net=${sleep.netnsPath}`, 'ss', '-Htlnp']);
    for (const port of [15001, 15006, 15008, 15080])
      assert.match(ss, new RegExp(`:${port} .*users:\\(\\("ztunnel",pid=\\d+`), ss);
    assert.match(listeners.detail, /all 4 held by ztunnel pid \d+ \(SOCKS5 on: ztunnel's \/config_dump/);
    assert.deepEqual(
      status(report),
      {
        ztunnel: 'pass',
        listeners: 'pass',
        rules: 'pass',
        annotation: 'pass',
        probe: 'pass',
      },
      JSON.stringify(report, null, 2),
    );
    assert.equal(report.ok, true);
    const res = await cli(['ambient-demo/sleep', '--lab', lab, '--kubeconfig', kubeconfig, '--json']);
    assert.equal(res.code, 0, res.stderr + res.stdout);
    assert.equal((JSON.parse(res.stdout) as DoctorReport).ok, true);
  });

  test('a listener port taken in the pod: ztunnel Pending and the listener check names the holder', async () => {
    const report = await doctor('ambient-demo/busy');
    assert.equal(report.ok, false);
    assert.equal(check(report, 'ztunnel').status, 'fail');
    assert.match(check(report, 'ztunnel').detail, /Pending/);
    const listeners = check(report, 'listeners');
    assert.equal(listeners.status, 'fail');
    assert.match(listeners.detail, new RegExp(`15006 .*held by .*pid ${process.pid}`));
    assert.match(listeners.cause!, /another process in the pod holds a port/);
    assert.match(listeners.next!, /ss -ntlp/);
  });

  test('a pod whose namespace is not labelled: not enrolled, no rules, and the fix is the label', async () => {
    const report = await doctor('plain/loner');
    assert.deepEqual(status(report), {
      ztunnel: 'fail',
      listeners: 'fail',
      rules: 'fail',
      annotation: 'fail',
      probe: 'fail',
    });
    assert.match(check(report, 'ztunnel').detail, /ztunnel has no proxy for plain\/loner/);
    const annotation = check(report, 'annotation');
    assert.match(annotation.cause!, /neither namespace plain nor the pod is labelled/);
    assert.equal(
      annotation.next,
      `kubectl --kubeconfig ${kubeconfig} label namespace plain istio.io/dataplane-mode=ambient`,
    );
    assert.match(check(report, 'rules').cause!, /no redirection rules/);
  });

  test('tampered rules: the rule check fails with the diff and the repair command; reconcile makes it pass', async () => {
    const sleep = pods.get('ambient-demo/sleep')!;
    await run('nsenter', [
      `--net=${sleep.netnsPath}`,
      'iptables',
      '-t',
      'nat',
      '-D',
      'OUTPUT',
      '-j',
      'ISTIO_OUTPUT',
    ]);
    const report = await doctor('ambient-demo/sleep');
    const rules = check(report, 'rules');
    assert.equal(rules.status, 'fail');
    assert.ok(
      rules.lines?.some((l) => /^missing: .*-A OUTPUT -j ISTIO_OUTPUT/.test(l)),
      rules.lines?.join('\n'),
    );
    assert.match(rules.cause!, /changed after the node agent installed them/);
    assert.match(rules.next!, /ambit redirect reconcile --netns /);
    // Without the jump nothing sends the probe to 15001.
    assert.equal(check(report, 'probe').status, 'fail');
    assert.equal(check(report, 'ztunnel').status, 'pass');
    const res = await cli(['ambient-demo/sleep', '--lab', lab, '--kubeconfig', kubeconfig]);
    assert.equal(res.code, 1);
    assert.match(res.stdout, /FAIL {2}in-pod redirection rules equal the expected ruleset/);
    assert.match(res.stdout, /likely cause: /);
    await createRedirector({ dnsCapture: true }).reconcile(sleep.netnsPath, [sleep.ip]);
    assert.equal((await doctor('ambient-demo/sleep')).ok, true);
  });

  test('ztunnel stopped: the ztunnel check fails first, the rules stay (fail closed), the probe is refused', async () => {
    await mesh!.stop();
    mesh = undefined;
    const report = await doctor('ambient-demo/sleep');
    assert.deepEqual(status(report), {
      ztunnel: 'fail',
      listeners: 'fail',
      rules: 'pass',
      annotation: 'pass',
      probe: 'fail',
    });
    assert.match(check(report, 'ztunnel').detail, /cannot reach ztunnel's admin server at localhost:15000/);
    assert.match(check(report, 'ztunnel').cause!, /ztunnel is not running/);
    assert.match(check(report, 'probe').detail, /ECONNREFUSED/);
    assert.match(check(report, 'probe').cause!, /nothing accepts there/);
  });

  test("a ztunnel without SOCKS5 (Istio's default): no 127.0.0.1:15080 in the pod, and the pod still passes", async () => {
    mesh = await LabMesh.start((await import('../../../src/lab/index.js')).loadLab(lab), {
      dir: join(dir, 'mesh-nosocks'),
      ztunnelEnv: { UNSTABLE_ENABLE_SOCKS5: 'false' },
    });
    const quiet = await createPod(lab, 'n1', { namespace: 'ambient-demo', name: 'quiet' });
    pods.set('ambient-demo/quiet', quiet);
    api.store.create(R.pods, 'ambient-demo', {
      metadata: { name: 'quiet', annotations: { 'ambient.istio.io/redirection': 'enabled' } },
      spec: { nodeName: 'n1', containers: [{ name: 'app', image: 'quiet' }] },
    });
    await mesh.enroll(quiet, 'quiet');
    const report = await doctor('ambient-demo/quiet');
    assert.equal(report.ok, true, JSON.stringify(report, null, 2));
    const listeners = check(report, 'listeners');
    assert.match(listeners.title, /SOCKS5 127\.0\.0\.1:15080 off/);
    assert.match(
      listeners.detail,
      /all 3 held by ztunnel pid \d+ \(SOCKS5 off: ztunnel's \/config_dump: socks5Addr null\)/,
    );
    const ss = await run('nsenter', [`--net=${quiet.netnsPath}`, 'ss', '-Htlnp']);
    assert.doesNotMatch(ss, /:15080 /);
  });
});
