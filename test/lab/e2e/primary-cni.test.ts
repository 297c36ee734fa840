/**
 * In-pod redirection under each reference primary CNI plugin (`ambit lab up --primary-cni`): the
 * seed's walkthrough on a two-node lab cluster per plugin, one lab after another (each its own lab,
 * removed also on failure). Enrollment (ztunnel's inpod lines, the four listeners, the rules),
 * sleep -> httpbin across nodes and on one node with real bytes through both ztunnels (access log
 * lines with the identities; a capture showing only TLS to 15008 on sleep's eth0), doctor, and a
 * kubelet-style probe from the node that must take the probe SNAT path (httpbin sees 169.254.7.127).
 *
 * ipvlan and macvlan pods hang off the node's uplink and can never reach it, nor it them: the lab
 * gives each node a sub-interface of the same kind (ambit-shim) and the probe is asserted to go
 * through it, while the same connection pinned to the uplink is asserted to fail. A kernel without a
 * link type a plugin needs (e.g. one built without ipvlan) gets the refusal asserted instead, after
 * the test has seen for itself that the kernel cannot make such a link.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import {
  addPods,
  DEMO_NAMESPACE,
  type DemoCluster,
  type DemoPod,
  labelAmbient,
  waitEnrolled,
} from '../../../src/demo/cluster.js';
import { accessLog, doctor, encrypted, inpodLogs, request, rules, sockets } from '../../../src/demo/steps.js';
import { Walkthrough } from '../../../src/demo/walkthrough.js';
import { ClusterLayout, clusterDown, clusterPod, podAdd } from '../../../src/lab/cluster/index.js';
import { listNetns, loadLab, PRIMARY_CNIS, type PrimaryCni } from '../../../src/lab/index.js';
import { NODE_SHIM, NODE_UPLINK, POD_BRIDGE } from '../../../src/lab/names.js';
import { PROBE_SNAT_V4 } from '../../../src/node/contract.js';
import { nsRun, run, TestNetns, uniqueLabCidrs } from '../../helpers/netns.js';
import { ambit } from '../../lab/cli.js';

const execFileAsync = promisify(execFile);

/** Whether this kernel can make the link type the plugin needs (bridge and ptp need only veth). */
function kernelHasLinkType(primary: PrimaryCni): boolean {
  if (primary === 'bridge' || primary === 'ptp') return true;
  const ns = new TestNetns();
  try {
    ns.exec('ip', ['link', 'add', 'ambit-tka', 'type', 'veth', 'peer', 'name', 'ambit-tkb']);
    ns.exec('ip', ['link', 'add', 'ambit-tkc', 'link', 'ambit-tka', 'type', primary]);
    return true;
  } catch (err) {
    assert.match(String((err as { stderr?: string }).stderr), /Unknown device type/);
    return false;
  } finally {
    ns.remove();
  }
}

/** What the pod's eth0 is under each plugin, as `ip -d link` shows it. */
const POD_LINK: Record<PrimaryCni, RegExp> = {
  bridge: /\n\s+veth /,
  ptp: /\n\s+veth /,
  ipvlan: /\n\s+ipvlan\s+mode l2 /,
  macvlan: /\n\s+macvlan mode bridge /,
};

/** GET /get from inside a namespace with curl; resolves to the client address httpbin saw. */
async function origin(netns: string, ip: string, extra: string[] = []): Promise<string> {
  const { stdout } = await execFileAsync(
    'ip',
    ['netns', 'exec', netns, 'curl', '-sS', '--max-time', '10', ...extra, `http://${ip}:8000/get`],
    { encoding: 'utf8' },
  );
  return (JSON.parse(stdout) as { origin: string }).origin.replace(/^::ffff:/, '');
}

test('an unknown --primary-cni is a usage error (exit 2) naming the choices; nothing is created', async () => {
  const lab = `pcbad${randomBytes(2).toString('hex')}`;
  const up = await ambit(['lab', 'up', '--name', lab, '--primary-cni', 'flannel']);
  assert.equal(up.code, 2, `${up.stdout}\n${up.stderr}`);
  assert.match(up.stderr, /--primary-cni must be one of bridge, ptp, ipvlan, macvlan \(got 'flannel'\)/);
  assert.deepEqual(
    listNetns().filter((ns) => ns.startsWith(`ambit-${lab}-`)),
    [],
  );
  assert.equal(existsSync(new ClusterLayout(lab).dir), false);
});

for (const primary of PRIMARY_CNIS) {
  describe(`ambit lab up --primary-cni ${primary}`, () => {
    const lab = `pc${primary}${randomBytes(2).toString('hex')}`;
    const labNetns = () => listNetns().filter((ns) => ns.startsWith(`ambit-${lab}-`));
    const cidrs = uniqueLabCidrs();
    const upArgs = [
      'lab',
      'up',
      '--name',
      lab,
      '--primary-cni',
      primary,
      '--node-cidr',
      cidrs.nodeCidr,
      '--pod-cidr',
      cidrs.podCidr,
      '--node-mask',
      String(cidrs.nodeMask),
    ];

    if (!kernelHasLinkType(primary)) {
      test(`this kernel has no ${primary} link type: lab up refuses with the reason and leaves nothing`, async () => {
        try {
          const up = await ambit(upArgs);
          assert.equal(up.code, 1, `${up.stdout}\n${up.stderr}`);
          assert.match(
            up.stderr,
            new RegExp(
              `--primary-cni ${primary} needs the kernel's ${primary} link type, which this kernel does not have .*pick another --primary-cni \\[LAB_PRIMARY_UNSUPPORTED\\]`,
            ),
          );
          assert.deepEqual(labNetns(), []);
          assert.equal(existsSync(new ClusterLayout(lab).dir), false, 'no lab dir');
        } finally {
          await clusterDown(lab);
        }
      });
      return;
    }

    const out: string[] = [];
    const w = new Walkthrough((text) => out.push(text));
    let c: DemoCluster;
    let local: DemoPod;
    const nodeNetns = (node: string) => loadLab(lab).nodes.find((n) => n.name === node)!.netns;

    /** Runs a seed step; a failure carries what the step printed. */
    async function step<T>(run: () => T | Promise<T>): Promise<T> {
      const from = out.length;
      try {
        return await run();
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- the step printed:\n${out.slice(from).join('')}`);
      }
    }

    before(async () => {
      const up = await ambit(upArgs, { timeoutMs: 300_000 });
      assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
      const pods = await addPods(lab);
      const localRef = { namespace: DEMO_NAMESPACE, name: 'httpbin-local' };
      await podAdd(lab, localRef, { node: pods.sleep.node, image: 'httpbin' });
      const record = clusterPod(lab, localRef)!;
      local = { ref: localRef, node: record.node, ip: record.ip, uid: record.uid, netns: record.netns };
      c = { lab, layout: new ClusterLayout(lab), ...pods };
      await labelAmbient(lab);
      await waitEnrolled(lab, [c.sleep, c.httpbin, local]);
    });

    after(async () => {
      await clusterDown(lab);
      assert.deepEqual(labNetns(), [], 'lab down leaves no namespace of the lab');
    });

    test('lab status names the primary; the pods are attached by it', async () => {
      const status = await ambit(['lab', 'status', '--name', lab]);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, new RegExp(`^ {2}primary CNI ${primary}\\b`, 'm'));
      const json = await ambit(['lab', 'status', '--name', lab, '--json']);
      assert.equal((JSON.parse(json.stdout) as { primaryCni: string }).primaryCni, primary);
      for (const pod of [c.sleep, c.httpbin, local]) {
        assert.match(nsRun(pod.netns, 'ip', ['-d', 'link', 'show', 'eth0']), POD_LINK[primary], pod.ref.name);
      }
      const n1Links = nsRun(nodeNetns('n1'), 'ip', ['-o', 'link', 'show']);
      assert.equal(n1Links.includes(`${POD_BRIDGE}:`), primary === 'bridge', `pod bridge on n1:\n${n1Links}`);
      assert.equal(
        n1Links.includes(`${NODE_SHIM}@${NODE_UPLINK}:`),
        primary === 'ipvlan' || primary === 'macvlan',
      );
    });

    test("enrollment: ztunnel's inpod log lines, the four listeners and the seed's rules in the pod", async () => {
      await step(() => inpodLogs(c, w));
      await step(() => sockets(c, w));
      await step(() => rules(c, w));
    });

    test('sleep -> httpbin across nodes: real bytes through both ztunnels, only TLS to 15008 on the wire', async () => {
      assert.notEqual(c.sleep.node, c.httpbin.node);
      await step(() => request(c, w));
      const marks = await step(() => encrypted(c, w));
      await step(() => accessLog(c, w, marks));
    });

    test('sleep -> httpbin on the same node: the same, through the one ztunnel', async () => {
      const same: DemoCluster = { ...c, httpbin: local };
      assert.equal(same.sleep.node, same.httpbin.node);
      await step(() => request(same, w));
      const marks = await step(() => encrypted(same, w));
      await step(() => accessLog(same, w, marks));
    });

    test('ambit doctor passes on the sleep pod', async () => {
      await step(() => doctor(c, w));
    });

    test('a kubelet-style probe from the node reaches httpbin through the probe SNAT path', async () => {
      for (const pod of [c.httpbin, local]) {
        const node = nodeNetns(pod.node);
        const probes = nsRun(node, 'ipset', ['list', 'istio-inpod-probes-v4']);
        assert.match(probes, new RegExp(`^${pod.ip.replaceAll('.', '\\.')} `, 'm'), 'the probe set holds it');
        // Past the in-pod rules to the app itself, not into ztunnel: httpbin sees the SNAT address.
        assert.equal(await origin(node, pod.ip), PROBE_SNAT_V4, `probe from ${pod.node} to ${pod.ref.name}`);
        const route = nsRun(node, 'ip', ['route', 'get', pod.ip]);
        const via: Record<PrimaryCni, RegExp> = {
          bridge: new RegExp(` dev ${POD_BRIDGE} `),
          ptp: / dev veth\w+ /,
          ipvlan: new RegExp(` dev ${NODE_SHIM} `),
          macvlan: new RegExp(` dev ${NODE_SHIM} `),
        };
        assert.match(route, via[primary], `the node reaches ${pod.ref.name} through`);
      }
    });

    if (primary === 'ipvlan' || primary === 'macvlan') {
      test(`the limit: the node cannot reach its own ${primary} pod through the uplink itself`, async () => {
        const node = nodeNetns(c.httpbin.node);
        // Pin the pod's address to the uplink (the pods' master) for this one check.
        run('ip', ['-n', node, 'route', 'add', `${c.httpbin.ip}/32`, 'dev', NODE_UPLINK]);
        try {
          await assert.rejects(
            origin(node, c.httpbin.ip, ['--connect-timeout', '5']),
            /Failed to connect|timed out|No route to host/,
          );
        } finally {
          run('ip', ['-n', node, 'route', 'del', `${c.httpbin.ip}/32`, 'dev', NODE_UPLINK]);
        }
        // Through the shim again, the same probe works.
        assert.equal(await origin(node, c.httpbin.ip), PROBE_SNAT_V4);
      });
    }
  });
}
