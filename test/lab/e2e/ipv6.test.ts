/**
 * IPv6 and dual stack on the lab (issue 16): a dual-stack network-only lab (routes per family), and
 * an IPv6-only and a dual-stack lab cluster, each with sleep on n1, httpbin on n2 and a second
 * httpbin on n1, enrolled in ambient. Over IPv6, sleep reaches both through ztunnel (the demo's own
 * request, wire check and access-log steps), a capture on the node's link carries only TLS to 15008,
 * the pod has the ISTIO chains in ip6tables, the fwmark rule in `ip -6 rule` and ztunnel's listeners
 * on IPv6, the host probe leaves with Istio's IPv6 SNAT address, the control plane gives ztunnel every
 * address of each workload, and a Service's IPv6 VIP reaches httpbin; in dual stack IPv4 still works.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type AddressInfo, isIPv4, isIPv6, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { CoreV1Api } from '@kubernetes/client-node';
import {
  addPods,
  type DemoCluster,
  type DemoPod,
  labelAmbient,
  waitEnrolled,
} from '../../../src/demo/cluster.js';
import { readPcap, streamsOf } from '../../../src/demo/pcap.js';
import { accessLog, encrypted, request, rules, sockets } from '../../../src/demo/steps.js';
import { Walkthrough } from '../../../src/demo/walkthrough.js';
import { formatAuthority } from '../../../src/hbone/headers.js';
import { startCapture } from '../../../src/lab/capture.js';
import {
  adminClient,
  ClusterLayout,
  clusterDown,
  clusterPod,
  podAdd,
} from '../../../src/lab/cluster/index.js';
import { sandboxIps } from '../../../src/lab/cluster/sandbox.js';
import { type IpFamily, loadLab } from '../../../src/lab/index.js';
import { NODE_UPLINK } from '../../../src/lab/names.js';
import { connected, connectInNetns, listenInNetns, NetnsHandle } from '../../../src/sys/index.js';
import { eventually } from '../../helpers/wait.js';
import { ambit } from '../../lab/cli.js';

const execFileAsync = promisify(execFile);
const PROBE_SNAT_V6 = 'fd16:9254:7127:1337:ffff:ffff:ffff:ffff';
const labs: string[] = [];

interface Echo {
  origin?: string;
  data?: string;
}

/** curl in a namespace (-g: the brackets of an IPv6 URL are no glob); resolves with httpbin's echo. */
async function curlIn(netns: string, url: string, ...args: string[]): Promise<Echo> {
  const { stdout } = await execFileAsync(
    'ip',
    ['netns', 'exec', netns, 'curl', '-sS', '-g', '--max-time', '10', ...args, url],
    { encoding: 'utf8' },
  );
  return JSON.parse(stdout) as Echo;
}

async function inNetns(netns: string, cmd: string, args: string[]): Promise<string> {
  return (await execFileAsync('ip', ['netns', 'exec', netns, cmd, ...args], { encoding: 'utf8' })).stdout;
}

/** `ambit lab up --ip-family`, then the demo's pods plus httpbin on n1 (same node as sleep), enrolled. */
async function bringUp(family: IpFamily): Promise<{ c: DemoCluster; local: DemoPod; core: CoreV1Api }> {
  const lab = `t6${randomBytes(3).toString('hex')}`;
  labs.push(lab);
  const up = await ambit(['lab', 'up', '--name', lab, '--ip-family', family]);
  assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
  assert.match(up.stdout, new RegExp(`\\(IP family ${family}\\)`));
  const pods = await addPods(lab);
  const localRef = { namespace: pods.sleep.ref.namespace, name: 'httpbin-n1' };
  await podAdd(lab, localRef, { node: 'n1', image: 'httpbin' });
  const record = clusterPod(lab, localRef)!;
  const local: DemoPod = {
    ref: localRef,
    node: 'n1',
    ip: sandboxIps(record).find((ip) => isIPv6(ip))!,
    uid: record.uid,
    netns: record.netns,
  };
  await labelAmbient(lab);
  await waitEnrolled(lab, [pods.sleep, pods.httpbin, local]);
  return { c: { lab, layout: new ClusterLayout(lab), ...pods }, local, core: adminClient(lab) };
}

function walkthrough(): { w: Walkthrough; text: () => string } {
  let out = '';
  return { w: new Walkthrough((t) => (out += t)), text: () => out };
}

/** A request with a unique body while capturing on n1's link to the fabric: what crossed between the nodes. */
async function nodeLinkCapture(c: DemoCluster): Promise<{ pcap: Buffer; marker: string }> {
  const marker = `ambit-ipv6-secret-${randomBytes(8).toString('hex')}`;
  const node = loadLab(c.lab).nodes.find((n) => n.name === c.sleep.node)!;
  const capture = await startCapture(node.netns, NODE_UPLINK, 'tcp');
  const echo = curlIn(
    c.sleep.netns,
    `http://${formatAuthority(c.httpbin.ip, 8000)}/post`,
    '--data-binary',
    marker,
  );
  // The capture stops whatever the request did, so tcpdump never outlives the test.
  const result = await echo.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  const pcap = await capture.stop();
  if ('error' in result) throw result.error;
  assert.equal(result.value.data, marker, 'httpbin echoed the marker');
  return { pcap, marker };
}

function assertOnlyHboneTls(pcap: Buffer, marker: string, from: string, to: string): void {
  const { segments } = readPcap(pcap);
  assert.ok(segments.length > 0, 'the capture holds TCP segments');
  for (const s of segments) {
    assert.ok(
      s.srcPort === 15008 || s.dstPort === 15008,
      `only HBONE between the nodes: ${s.src}:${s.srcPort} > ${s.dst}:${s.dstPort}`,
    );
    assert.ok(isIPv6(s.src) && isIPv6(s.dst), `IPv6 on the wire: ${s.src} > ${s.dst}`);
  }
  const streams = streamsOf(segments).filter((s) => s.bytes > 0);
  assert.ok(
    streams.some((s) => s.from === from && s.to === to && s.toPort === 15008 && s.tls?.['application_data']),
    `TLS application data from ${from} to [${to}]:15008 in ${JSON.stringify(streams.map((s) => [s.from, s.to, s.tls]))}`,
  );
  for (const s of streams) assert.ok(s.tls, `${s.from}:${s.fromPort} > ${s.to}:${s.toPort} is TLS`);
  assert.equal(pcap.includes(marker), false, 'the body is not on the wire in plain text');
}

/** ztunnel's view (config_dump on the node's admin port) of a workload's addresses. */
async function workloadIps(c: DemoCluster, node: string, name: string): Promise<string[]> {
  const netns = loadLab(c.lab).nodes.find((n) => n.name === node)!.netns;
  const dump = JSON.parse(
    await inNetns(netns, 'curl', ['-sS', '--max-time', '10', 'http://127.0.0.1:15000/config_dump']),
  ) as { workloads: { name: string; workloadIps?: string[] }[] };
  return dump.workloads.find((w) => w.name === name)?.workloadIps ?? [];
}

/** The IPv6 checks both labs share. */
async function checkIpv6(c: DemoCluster, local: DemoPod): Promise<void> {
  // The demo's request (cross node), wire check on sleep's eth0, access log of both ztunnels.
  const { w, text } = walkthrough();
  await request(c, w);
  const marks = await encrypted(c, w);
  await accessLog(c, w, marks);
  assert.match(text(), new RegExp(`"origin": "${c.sleep.ip}"`));
  assert.match(text(), /IP6 \S+\.\d+ > \S+\.15008: /, 'tcpdump shows IPv6 to 15008');

  // Between the nodes: only TLS to 15008, over IPv6.
  const { pcap, marker } = await nodeLinkCapture(c);
  assertOnlyHboneTls(pcap, marker, c.sleep.ip, c.httpbin.ip);

  // Same node: through n1's ztunnel, which logs both ends, HBONE to the pod's IPv6 address.
  const echo = await curlIn(c.sleep.netns, `http://${formatAuthority(local.ip, 8000)}/get`);
  assert.equal(echo.origin, c.sleep.ip, "the app sees sleep's IPv6 address");
  const hbone = `dst.hbone_addr=${formatAuthority(local.ip, 8000)}`;
  for (const direction of ['outbound', 'inbound']) {
    const line = new RegExp(`connection complete\\t.*${regexQuote(hbone)} .*direction="${direction}"`);
    await eventually(`n1's ztunnel logging the same-node ${direction} connection`, () =>
      line.test(ztunnelLog(c, 'n1')),
    );
  }

  // The pod's IPv6 rules, policy route and listeners.
  rules(c, w);
  assert.match(text(), /ip6tables-save/);
  const ruleList = await inNetns(c.sleep.netns, 'ip', ['-6', 'rule']);
  assert.match(ruleList, /^32764:\s+from all fwmark 0x111\/0xfff lookup 100\s*$/m);
  const table = await inNetns(c.sleep.netns, 'ip', ['-6', 'route', 'show', 'table', '100']);
  assert.match(table, /^local default dev lo\b/m);
  sockets(c, w);
  const ss6 = await inNetns(c.sleep.netns, 'ss', ['-6', '-ntlp']);
  for (const port of [15001, 15006, 15008]) {
    assert.match(
      ss6,
      new RegExp(`LISTEN .*\\*:${port}\\s.*users:\\(\\("ztunnel"`),
      `IPv6 listener on ${port}`,
    );
  }

  // The node's probe to the pod leaves with Istio's IPv6 SNAT address and reaches the app directly.
  const probe = await curlIn(
    loadLab(c.lab).nodes.find((n) => n.name === c.httpbin.node)!.netns,
    `http://${formatAuthority(c.httpbin.ip, 8000)}/get`,
  );
  assert.equal(probe.origin, PROBE_SNAT_V6);
}

/**
 * A Service over the httpbin pods (both carry app=httpbin) with the given family policy: each of its
 * cluster IPs reaches httpbin through sleep's ztunnel, which logs the service; returns the VIPs.
 */
async function checkServiceVips(
  c: DemoCluster,
  core: CoreV1Api,
  spec: Record<string, unknown>,
): Promise<string[]> {
  const namespace = c.sleep.ref.namespace;
  const svc = await core.createNamespacedService({
    namespace,
    body: {
      metadata: { name: 'httpbin' },
      spec: { selector: { app: 'httpbin' }, ports: [{ port: 8000, name: 'http' }], ...spec },
    },
  });
  const vips = svc.spec?.clusterIPs ?? [];
  const sleepIps = sandboxIps(clusterPod(c.lab, c.sleep.ref)!);
  for (const vip of vips) {
    const line = new RegExp(
      `connection complete\\t.*dst\\.service="httpbin\\.${namespace}\\.svc\\.cluster\\.local" .*direction="outbound"`,
    );
    const before = ztunnelLog(c, c.sleep.node).length;
    // Until ztunnel has the service from xDS, the VIP is an unknown address; then it picks an endpoint.
    let echo: Echo | undefined;
    await eventually(`a request to the service VIP ${vip} through ztunnel`, async () => {
      echo = await curlIn(c.sleep.netns, `http://${formatAuthority(vip, 8000)}/get`, '--max-time', '2').catch(
        () => undefined,
      );
      return echo !== undefined && line.test(ztunnelLog(c, c.sleep.node).slice(before));
    });
    const family = isIPv6(vip) ? isIPv6 : isIPv4;
    assert.equal(
      echo?.origin,
      sleepIps.find((ip) => family(ip)),
      `the app sees sleep's address of ${vip}'s family`,
    );
  }
  return vips;
}

function ztunnelLog(c: DemoCluster, node: string): string {
  return readFileSync(c.layout.logFile({ component: 'ztunnel', node }), 'utf8');
}

const regexQuote = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

after(async () => {
  for (const lab of labs) await clusterDown(lab);
});

/** Connects from pod `from` to each address of pod `to` in turn; the source addresses `to` saw. */
async function sourcesSeen(from: { netnsPath: string }, to: { netnsPath: string; ips?: string[] }) {
  const server = NetnsHandle.open(to.netnsPath);
  const client = NetnsHandle.open(from.netnsPath);
  const listener = await listenInNetns(server, { host: '::', port: 0 });
  try {
    const seen: string[] = [];
    listener.on('connection', (s: Socket) => {
      seen.push(s.remoteAddress ?? '');
      s.end();
    });
    const port = (listener.address() as AddressInfo).port;
    for (const host of to.ips ?? []) {
      const socket = await connected(connectInNetns(client, { host, port }));
      await new Promise((r) => socket.once('close', r).resume());
    }
    return seen;
  } finally {
    listener.close();
    server.close();
    client.close();
  }
}

describe('dual-stack network-only lab', () => {
  test('pods get an address per family from host-local; each family routes between the nodes', async () => {
    const lab = `t6${randomBytes(3).toString('hex')}`;
    labs.push(lab);
    const up = await ambit([
      ...['lab', 'up', '--name', lab, '--network-only', '--pods-per-node', '1', '--ip-family', 'dual'],
    ]);
    assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
    const state = loadLab(lab);
    const [p1, p2] = state.pods;
    assert.deepEqual(p1!.ips, ['10.244.1.2', 'fd00:10:244:1::2']);
    assert.deepEqual(p2!.ips, ['10.244.2.2', 'fd00:10:244:2::2']);
    assert.match(up.stdout, /default\/n1-pod1 +n1 +10\.244\.1\.2,fd00:10:244:1::2 /);
    assert.deepEqual(
      await sourcesSeen(p1!, p2!),
      ['::ffff:10.244.1.2', 'fd00:10:244:1::2'],
      'n1-pod1 over IPv4, then over IPv6',
    );
  });
});

describe('dual-stack lab with its own ranges', () => {
  test('--node-cidr and --pod-cidr take an IPv4 and an IPv6 range each, comma-separated; pods get addresses from both and reach each other over both', async () => {
    const lab = `t6${randomBytes(3).toString('hex')}`;
    labs.push(lab);
    const up = await ambit([
      ...['lab', 'up', '--name', lab, '--network-only', '--pods-per-node', '1', '--ip-family', 'dual'],
      ...['--node-cidr', '10.241.7.0/24,fd00:ab:240::/64', '--pod-cidr', 'fd00:ab:244::/56,10.77.0.0/16'],
    ]);
    assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
    const state = loadLab(lab);
    assert.deepEqual(
      state.nodes.map((n) => n.networks?.map((w) => `${w.ip} ${w.podCidr}`)),
      [
        ['10.241.7.1 10.77.1.0/24', 'fd00:ab:240::1 fd00:ab:244:1::/64'],
        ['10.241.7.2 10.77.2.0/24', 'fd00:ab:240::2 fd00:ab:244:2::/64'],
      ],
    );
    const [p1, p2] = state.pods;
    assert.deepEqual(p1!.ips, ['10.77.1.2', 'fd00:ab:244:1::2']);
    assert.deepEqual(p2!.ips, ['10.77.2.2', 'fd00:ab:244:2::2']);
    assert.deepEqual(
      await sourcesSeen(p1!, p2!),
      ['::ffff:10.77.1.2', 'fd00:ab:244:1::2'],
      'cross-node over IPv4, then IPv6',
    );
    const wrongFamily = await ambit([
      'lab',
      'up',
      '--name',
      `t6${randomBytes(3).toString('hex')}`,
      '--pod-cidr',
      'fd00:ab:244::/56',
    ]);
    assert.equal(wrongFamily.code, 2, wrongFamily.stderr);
    assert.match(
      wrongFamily.stderr,
      /--pod-cidr fd00:ab:244::\/56 is an IPv6 range; add --ip-family ipv6 or dual/,
    );
  });
});

describe('IPv6-only lab', () => {
  test('pods and nodes have only IPv6 addresses; sleep -> httpbin over IPv6 through ztunnel, same node and cross node, encrypted between the nodes', async () => {
    const { c, local, core } = await bringUp('ipv6');
    for (const p of [c.sleep, c.httpbin, local]) {
      const pod = await core.readNamespacedPod({ namespace: p.ref.namespace, name: p.ref.name });
      assert.deepEqual(
        pod.status?.podIPs?.map((i) => i.ip),
        [p.ip],
        `${p.ref.name}: one IPv6 podIP`,
      );
      assert.ok(p.ip.startsWith('fd00:10:244:'), p.ip);
    }
    const node = await core.readNode({ name: 'n1' });
    assert.deepEqual(node.spec?.podCIDRs, ['fd00:10:244:1::/64']);
    assert.deepEqual(
      node.status?.addresses?.filter((a) => a.type === 'InternalIP').map((a) => a.address),
      ['fd00:10:240::1'],
    );
    assert.deepEqual(await workloadIps(c, 'n1', 'httpbin'), [c.httpbin.ip]);
    await checkIpv6(c, local);
    const vips = await checkServiceVips(c, core, {});
    assert.equal(vips.length, 1);
    assert.ok(vips[0]!.startsWith('fd00:10:96::'), `an IPv6 cluster IP: ${vips}`);
  });
});

describe('dual-stack lab', () => {
  test('pods have an IPv4 and an IPv6 address, both in the xDS workload; IPv6 works as in an IPv6-only lab and IPv4 still works', async () => {
    const { c, local, core } = await bringUp('dual');
    const httpbin = await core.readNamespacedPod({ namespace: c.httpbin.ref.namespace, name: 'httpbin' });
    const ips = (httpbin.status?.podIPs ?? []).map((p) => p.ip);
    assert.equal(ips.length, 2, JSON.stringify(ips));
    assert.ok(isIPv4(ips[0]!) && ips[1] === c.httpbin.ip, `IPv4 first, then IPv6: ${ips}`);
    assert.equal(httpbin.status?.podIP, ips[0]);
    const node = await core.readNode({ name: 'n2' });
    assert.deepEqual(node.spec?.podCIDRs, ['10.244.2.0/24', 'fd00:10:244:2::/64']);
    assert.deepEqual(await workloadIps(c, 'n1', 'httpbin'), ips);
    await checkIpv6(c, local);

    // IPv4 still works, through ztunnel, with IPv4's rules and policy route beside IPv6's.
    const sleepV4 = sandboxIps(clusterPod(c.lab, c.sleep.ref)!).find((ip) => isIPv4(ip))!;
    const v4 = await curlIn(c.sleep.netns, `http://${ips[0]}:8000/get`);
    assert.equal(v4.origin, sleepV4);
    const hbone = new RegExp(
      `connection complete\\t.*dst\\.hbone_addr=${regexQuote(ips[0]!)}:8000 .*direction="inbound"`,
    );
    await eventually("n2's ztunnel logging the IPv4 inbound connection", () =>
      hbone.test(ztunnelLog(c, 'n2')),
    );
    assert.match(await inNetns(c.sleep.netns, 'ip', ['-4', 'rule']), /fwmark 0x111\/0xfff lookup 100/);
    assert.match(await inNetns(c.sleep.netns, 'iptables-save', []), /-j TPROXY --on-port 15008 /);

    // A dual-stack Service: a cluster IP in each family, each reaching httpbin in its own family.
    const vips = await checkServiceVips(c, core, { ipFamilyPolicy: 'RequireDualStack' });
    assert.ok(vips.length === 2 && isIPv4(vips[0]!) && isIPv6(vips[1]!), `both families: ${vips}`);
  });
});
