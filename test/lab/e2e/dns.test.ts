/**
 * DNS in a lab cluster (issue 16, item 2), end to end: the agent writes Istio's DNS capture rules
 * (on by default), the pod's own resolver (glibc, in curl) sends its query to the nameserver of its
 * resolv.conf on port 53, the rules take it to ztunnel's DNS proxy on 15053 in the pod, which answers
 * the Service's name with its VIP from the workload store, and the connection to the VIP then goes
 * through ztunnel as service traffic. The machine's nameserver is not reachable from the lab's pods,
 * so an answer can only come from ztunnel.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { CoreV1Api } from '@kubernetes/client-node';
import { addPods, type DemoCluster, labelAmbient, waitEnrolled } from '../../../src/demo/cluster.js';
import { adminClient, ClusterLayout, clusterDown } from '../../../src/lab/cluster/index.js';
import { loadLab } from '../../../src/lab/index.js';
import { eventually } from '../../helpers/wait.js';
import { ambit } from '../../lab/cli.js';

const execFileAsync = promisify(execFile);
const lab = `td${randomBytes(3).toString('hex')}`;
const layout = new ClusterLayout(lab);
let c: Pick<DemoCluster, 'sleep' | 'httpbin'>;
let core: CoreV1Api;
let vip: string;

/** `curl` in the pod's netns (the machine's /etc/resolv.conf, as a pod with the node's DNS policy). */
async function curlIn(netns: string, url: string): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await execFileAsync(
      'ip',
      ['netns', 'exec', netns, 'curl', '-sS', '--max-time', '10', url],
      {
        encoding: 'utf8',
      },
    );
    return { code: 0, out: stdout };
  } catch (err) {
    const e = err as { code?: number; stderr?: string };
    return { code: e.code ?? 1, out: e.stderr ?? '' };
  }
}

/** Packets the pod's nat ISTIO_OUTPUT rules sent to ztunnel's DNS port, UDP and TCP together. */
async function dnsRedirected(netns: string): Promise<number> {
  const { stdout } = await execFileAsync('ip', ['netns', 'exec', netns, 'iptables-save', '-c', '-t', 'nat'], {
    encoding: 'utf8',
  });
  return stdout
    .split('\n')
    .filter((l) => l.includes('--to-ports 15053'))
    .reduce((sum, l) => sum + Number(/^\[(\d+):/.exec(l)?.[1] ?? 0), 0);
}

const ztunnelLog = (node: string) => readFileSync(layout.logFile({ component: 'ztunnel', node }), 'utf8');

before(async () => {
  const up = await ambit(['lab', 'up', '--name', lab]);
  assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
  c = await addPods(lab);
  core = adminClient(lab);
  const svc = await core.createNamespacedService({
    namespace: c.httpbin.ref.namespace,
    body: {
      metadata: { name: 'httpbin' },
      spec: { selector: { app: 'httpbin' }, ports: [{ port: 8000, name: 'http' }] },
    },
  });
  vip = svc.spec!.clusterIP!;
  await labelAmbient(lab);
  await waitEnrolled(lab, [c.sleep, c.httpbin]);
});

after(async () => {
  await clusterDown(lab);
});

describe('DNS through ztunnel in a lab cluster', () => {
  test("the Service's name, in each form a pod uses, answers with its VIP and reaches httpbin through ztunnel", async () => {
    const ns = c.httpbin.ref.namespace;
    const before = await dnsRedirected(c.sleep.netns);
    for (const host of ['httpbin', `httpbin.${ns}`, `httpbin.${ns}.svc.cluster.local`]) {
      // Until ztunnel has the Service from xDS its name is forwarded upstream, which no lab pod reaches.
      let last = { code: -1, out: '' };
      await eventually(`curl http://${host}:8000/get from sleep`, async () => {
        last = await curlIn(c.sleep.netns, `http://${host}:8000/get`);
        return last.code === 0;
      }).catch((err: Error) => {
        throw new Error(`${err.message}: curl exit ${last.code}: ${last.out}`);
      });
      const echo = JSON.parse(last.out) as { origin: string; headers: Record<string, string> };
      assert.equal(echo.origin, c.sleep.ip, 'httpbin sees the sleep pod');
      assert.equal(echo.headers['Host'] ?? echo.headers['host'], `${host}:8000`);
    }
    assert.ok(
      (await dnsRedirected(c.sleep.netns)) > before,
      "the queries went through the pod's DNS capture rules",
    );
    // The connections went to the VIP, as service traffic through ztunnel to httpbin on the other node.
    const line = new RegExp(
      `connection complete\\t.*dst\\.service="httpbin\\.${ns}\\.svc\\.cluster\\.local" .*direction="outbound"`,
    );
    await eventually("n1's ztunnel logging the service connection", () => line.test(ztunnelLog('n1')));
    // What the pod's resolver got for the name: the Service's VIP.
    const { stdout } = await execFileAsync(
      'ip',
      ['netns', 'exec', c.sleep.netns, 'getent', 'ahostsv4', 'httpbin'],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(stdout.split(/\s+/)[0], vip, stdout);
    // n1's ztunnel counted the pod's queries as Istio's does (istio_dns_requests_total, unstable there too).
    const n1 = loadLab(lab).nodes.find((n) => n.name === 'n1')!;
    const metrics = await execFileAsync(
      'ip',
      ['netns', 'exec', n1.netns, 'curl', '-sS', '--max-time', '10', 'http://127.0.0.1:15020/metrics'],
      { encoding: 'utf8' },
    );
    const asked =
      /^istio_dns_requests_total\{request_query_type="A",request_protocol="udp",source_canonical_service="sleep",[^}]*\} (\d+)$/m.exec(
        metrics.stdout,
      );
    assert.ok(
      asked && Number(asked[1]) >= 3,
      `the A queries of sleep in n1's ztunnel metrics:\n${metrics.stdout}`,
    );
  });
});
