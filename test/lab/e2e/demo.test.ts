/**
 * `ambit demo` as CI runs it (a child process of the compiled CLI, real kernel, root): every step of
 * the seed's walkthrough holds and shows its evidence; a second run works; --keep leaves a lab that
 * `lab exec` and `lab down` handle, and down leaves nothing. The tests share the lab name `demo`,
 * so they run in order in this one file.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { cgroupPids, labCgroup } from '../../../src/lab/cluster/cgroup.js';
import { ClusterLayout, clusterDown, clusterStatus, labProcesses } from '../../../src/lab/cluster/index.js';
import { processAlive } from '../../../src/lab/cluster/supervisor.js';
import { listNetns, loadLab } from '../../../src/lab/index.js';
import { run } from '../../helpers/netns.js';
import { ambit } from '../../lab/cli.js';

const LAB = 'demo';
const layout = new ClusterLayout(LAB);
const IDENTITY = 'spiffe://cluster.local/ns/ambient-demo/sa/default';
const demoNetns = () => listNetns().filter((ns) => ns.startsWith(`ambit-${LAB}-`));

function assertNothingLeft(pids: readonly number[] = []): void {
  assert.deepEqual(demoNetns(), [], 'no netns of the demo lab');
  assert.deepEqual(labProcesses(LAB), [], 'no process in the lab namespaces or cgroups');
  assert.deepEqual(pids.filter(processAlive), [], 'every process of the lab ended');
  assert.equal(existsSync(labCgroup(LAB)), false, 'the lab cgroup is gone');
  assert.equal(existsSync(layout.dir), false, 'the lab dir is gone');
}

/**
 * The four listeners of the seed's `ss -ntlp`, all held by the same process; returns its pid. The seed
 * shows a backlog of 128; ambit's listeners queue 4096, which a single-threaded proxy needs to absorb a
 * burst of connections (see LISTEN_BACKLOG in pod-proxy.ts).
 */
function assertListeners(ss: string): number {
  const owners = ['\\*:15001', '\\*:15006', '\\*:15008', '127\\.0\\.0\\.1:15080'].map((addr) => {
    const m = new RegExp(`LISTEN\\s+0\\s+4096\\s+${addr}\\s+\\S+\\s+users:\\(\\("ztunnel",pid=(\\d+),`).exec(
      ss,
    );
    assert.ok(m, `listener ${addr} in:\n${ss}`);
    return Number(m[1]);
  });
  assert.equal(new Set(owners).size, 1, 'one process (ztunnel) holds all four');
  return owners[0]!;
}

/** Everything each step of the walkthrough must have printed. */
function assertWalkthrough(out: string): void {
  const headings = [...out.matchAll(/^== Step (\d+): (.+) ==$/gm)].map((m) => `${m[1]} ${m[2]}`);
  assert.deepEqual(headings, [
    '1 Bring up a two-node lab cluster',
    '2 Deploy sleep and httpbin in namespace ambient-demo',
    '3 Label ambient-demo for ambient mode',
    '4 Check the ztunnel proxy logs',
    '5 Confirm the state of sockets',
    '6 Check the iptables rules setup',
    '7 Send a request from sleep to httpbin',
    '8 Prove it crossed the wire encrypted',
    '9 Read the access log of both ztunnels',
    '10 Run ambit doctor on ambient-demo/sleep',
  ]);
  const pods =
    /pod ambient-demo\/sleep\s+node n1\s+ip (\S+)[\s\S]*pod ambient-demo\/httpbin\s+node n2\s+ip (\S+)/.exec(
      out,
    );
  assert.ok(pods, 'sleep on n1 and httpbin on n2 with their IPs');
  const [, sleepIp, httpbinIp] = pods;

  // (a) grep inpod
  for (const line of [
    /^ {2}inpod_enabled: true$/m,
    /^ {2}inpod_uds: \/var\/run\/ambit\/lab\/demo\/nodes\/n1\/ztunnel\.sock$/m,
    /^ {2}inpod_port_reuse: true$/m,
    /^ {2}inpod_mark: 1337$/m,
    /Z {2}INFO ztunnel::inpod::workloadmanager: handling new stream$/m,
    /Z {2}INFO ztunnel::inpod::statemanager: pod WorkloadUid\("[0-9a-f-]{36}"\) received netns, starting proxy name=sleep/m,
    /Z {2}INFO ztunnel::inpod::statemanager: pod WorkloadUid\("[0-9a-f-]{36}"\) received netns, starting proxy name=httpbin/m,
    /Z {2}INFO ztunnel::inpod::statemanager: pod received snapshot sent$/m,
  ]) {
    assert.match(out, line);
  }
  // (b) ss -ntlp, (c) iptables-save
  assertListeners(out);
  for (const rule of [
    /^ {2}:ISTIO_PRERT - \[0:0\]$/m,
    /^ {2}:ISTIO_OUTPUT - \[0:0\]$/m,
    /^ {2}-A ISTIO_PRERT .*-j TPROXY --on-port 15008 /m,
    /^ {2}-A ISTIO_PRERT .*-j TPROXY --on-port 15006 /m,
    /^ {2}-A ISTIO_OUTPUT .*-j REDIRECT --to-ports 15001$/m,
  ]) {
    assert.match(out, rule);
  }
  // (d) the httpbin responses, as sleep's curl printed them
  assert.match(out, new RegExp(`"host": "${httpbinIp}:8000"`));
  assert.match(out, /"url": "http:\/\/httpbin\/get"/);
  assert.match(out, /"data": "hello httpbin, from sleep"/);
  assert.match(out, new RegExp(`"origin": "(::ffff:)?${sleepIp}"`));
  // (e) the capture: TCP to 15008 only, TLS records, and not the marker
  const marker = /--data-binary '(ambit-demo-secret-[0-9a-f]{16})'/.exec(out)?.[1];
  assert.ok(marker, 'the marked request is shown');
  assert.match(out, new RegExp(`httpbin received and echoed the body '${marker}'`));
  assert.match(out, new RegExp(`IP ${sleepIp}\\.\\d+ > ${httpbinIp}\\.15008: `), 'tcpdump lines to 15008');
  assert.doesNotMatch(
    out,
    new RegExp(`IP ${sleepIp}\\.\\d+ > ${httpbinIp}\\.8000: `),
    'no plain 8000 on eth0',
  );
  assert.match(
    out,
    new RegExp(`${sleepIp}:\\d+ > ${httpbinIp}:15008 +\\d+ bytes +TLS records: .*\\d+ application_data`),
  );
  assert.match(
    out,
    new RegExp(`${httpbinIp}:15008 > ${sleepIp}:\\d+ +\\d+ bytes +TLS records: .*\\d+ application_data`),
  );
  assert.doesNotMatch(out, /NOT TLS/);
  assert.match(out, new RegExp(`'${marker}' in the capture: no`));
  assert.match(out, /'POST \/post' in the capture: no/);
  // (f) both ztunnels' access lines with the identities
  const access = (direction: string, node: string) =>
    new RegExp(
      `ztunnel --node ${node} \\| grep 'connection complete'.*\\n {2}\\S+Z\tinfo\taccess\tconnection complete\t.*src\\.identity="${IDENTITY}" .*dst\\.hbone_addr=${httpbinIp}:8000 .*dst\\.identity="${IDENTITY}" .*direction="${direction}"`,
    );
  assert.match(out, access('outbound', 'n1'));
  assert.match(out, access('inbound', 'n2'));
  // (g) doctor, then what to try next
  assert.match(out, /5 passed, 0 failed, 0 skipped: redirection for this pod looks healthy/);
  assert.match(
    out,
    /== What to try next ==[\s\S]*kubectl --kubeconfig \/var\/run\/ambit\/lab\/demo\/kubeconfig get pods/,
  );
  assert.match(out, /Demo finished: every step held\./);
}

describe('ambit demo', () => {
  after(async () => {
    await clusterDown(LAB);
  });

  test('fails early, with the fix, when not root; creates nothing', async () => {
    const r = await ambit(['demo'], { user: 65534 });
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /needs root: run it with sudo \(or as root\) \[LAB_NOT_ROOT\]/);
    assert.deepEqual(demoNetns(), []);
  });

  test('an unknown --ip-family is a usage error; creates nothing', async () => {
    const r = await ambit(['demo', '--ip-family', 'ipv5']);
    assert.equal(r.code, 2, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /--ip-family must be one of ipv4, ipv6, dual \(got 'ipv5'\)/);
    assert.deepEqual(demoNetns(), []);
  });

  test('fails early naming a missing walkthrough tool and scripts/setup; creates nothing', async () => {
    // A PATH with everything the lab needs but tcpdump.
    const bin = mkdtempSync(join(tmpdir(), 'ambit-demo-path-'));
    try {
      for (const tool of ['sh', 'ip', 'nsenter', 'curl', 'ss', 'iptables-save']) {
        symlinkSync(run('sh', ['-c', `command -v ${tool}`]).trim(), join(bin, tool));
      }
      const r = await ambit(['demo'], { env: { PATH: bin } });
      assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, /runs tcpdump inside the pods .*run scripts\/setup .*\[DEMO_MISSING_TOOL\]/);
      assert.deepEqual(demoNetns(), []);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  test('walks through every step of the seed and removes the lab, after clearing a crashed run', async () => {
    run('ip', ['netns', 'add', `ambit-${LAB}-n1`]);
    const demo = await ambit(['demo']);
    assert.equal(demo.code, 0, `${demo.stdout}\n${demo.stderr}`);
    assert.match(demo.stdout, /Removed the lab 'demo' left by an earlier run\./);
    assertWalkthrough(demo.stdout);
    assert.match(demo.stdout, /== Removing the lab ==\n[\s\S]*^lab 'demo' removed$/m);
    assertNothingLeft();
  });

  test('--primary-cni ptp: every step holds with the pods on ptp veths; an unknown plugin is a usage error', async () => {
    const bad = await ambit(['demo', '--primary-cni', 'flannel']);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--primary-cni must be one of bridge, ptp, ipvlan, macvlan \(got 'flannel'\)/);
    const demo = await ambit(['demo', '--primary-cni', 'ptp', '--keep']);
    try {
      assert.equal(demo.code, 0, `${demo.stdout}\n${demo.stderr}`);
      assertWalkthrough(demo.stdout);
      // ptp: the node has a /32 route per pod through the pod's own veth, and no pod bridge.
      const sleepIp = /pod ambient-demo\/sleep\s+node n1\s+ip (\S+)/.exec(demo.stdout)?.[1];
      assert.ok(sleepIp, 'sleep and its IP');
      const node = loadLab(LAB).nodes.find((n) => n.name === 'n1')!;
      const route = run('ip', ['netns', 'exec', node.netns, 'ip', 'route', 'get', sleepIp]);
      assert.match(route, /dev veth/, route);
      assert.doesNotMatch(run('ip', ['netns', 'exec', node.netns, 'ip', 'link']), /ambit-cni0/);
    } finally {
      await ambit(['lab', 'down', '--name', LAB]);
    }
    assertNothingLeft();
  });

  test('--ip-family ipv6: every step holds over IPv6 (the request, the capture, ip6tables-save, doctor)', async () => {
    const demo = await ambit(['demo', '--ip-family', 'ipv6']);
    assert.equal(demo.code, 0, `${demo.stdout}\n${demo.stderr}`);
    const pods =
      /pod ambient-demo\/sleep\s+node n1\s+ip (\S+)[\s\S]*pod ambient-demo\/httpbin\s+node n2\s+ip (\S+)/.exec(
        demo.stdout,
      );
    assert.ok(pods, 'sleep and httpbin with their IPs');
    const [, sleepIp, httpbinIp] = pods;
    assert.match(sleepIp!, /^fd00:10:244:1::/);
    assert.match(demo.stdout, /ambit lab exec ambient-demo\/sleep -- ip6tables-save/);
    assert.ok(demo.stdout.includes(`"origin": "${sleepIp}"`), 'httpbin saw sleep over IPv6');
    assert.ok(demo.stdout.includes(`IP6 ${sleepIp}.`), 'tcpdump shows IPv6 packets');
    assert.ok(demo.stdout.includes(`${sleepIp}:`) && demo.stdout.includes(`> ${httpbinIp}:15008 `));
    assert.ok(demo.stdout.includes(`dst.hbone_addr=[${httpbinIp}]:8000`), 'the access log brackets IPv6');
    assert.doesNotMatch(demo.stdout, /NOT TLS/);
    assert.match(demo.stdout, /Demo finished: every step held\./);
    assertNothingLeft();
  });

  test('a second run with --keep leaves the lab to explore; lab exec shows the listeners; lab down leaves nothing', async () => {
    const demo = await ambit(['demo', '--keep']);
    assert.equal(demo.code, 0, `${demo.stdout}\n${demo.stderr}`);
    assertWalkthrough(demo.stdout);
    assert.match(demo.stdout, /== The lab keeps running ==/);
    assert.match(demo.stdout, /Remove: {2}ambit lab down --name demo/);
    assert.doesNotMatch(demo.stdout, /== Removing the lab ==/);

    const status = clusterStatus(loadLab(LAB));
    assert.ok(
      status.every((c) => c.up),
      'every component still runs',
    );
    const ss = await ambit(['lab', 'exec', 'ambient-demo/sleep', '--', 'ss', '-ntlp'], {
      env: { AMBIT_LAB: LAB },
    });
    assert.equal(ss.code, 0, ss.stderr);
    const owner = assertListeners(ss.stdout);
    assert.equal(owner, status.find((c) => c.name === 'ztunnel-n1')?.pid, 'held by ztunnel on n1');

    const pids = [...status.map((c) => c.pid!), ...cgroupPids(labCgroup(LAB))];
    const down = await ambit(['lab', 'down', '--name', LAB]);
    assert.equal(down.code, 0, down.stderr);
    assertNothingLeft(pids);
  });
});
