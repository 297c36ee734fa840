/**
 * The lab on the real kernel: two nodes with two pods each through the real reference CNI plugins,
 * all-pairs pod-to-pod TCP (cross-node bytes counted on the fabric bridge), `lab exec`, and
 * `lab down` leaving nothing behind, also after a crash lost the state file.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import type { AddressInfo, Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  checkPrerequisites,
  createPod,
  type LabPod,
  type LabState,
  labDown,
  labUp,
  listNetns,
  loadLab,
} from '../../../src/lab/index.js';
import { connected, connectInNetns, listenInNetns, NetnsHandle } from '../../../src/sys/index.js';
import { run, uniqueSubnet } from '../../helpers/netns.js';
import { ambit } from '../../lab/cli.js';

const PAYLOAD = 64 * 1024;

function uniqueLab(): string {
  return `tl${randomBytes(4).toString('hex')}`;
}

/** A node CIDR and a pod CIDR (/24 split into /26 per node) that differ. */
function uniqueCidrs(): { nodeCidr: string; podCidr: string } {
  const pods = uniqueSubnet();
  let nodes = uniqueSubnet();
  while (nodes.cidr === pods.cidr) nodes = uniqueSubnet();
  return { nodeCidr: nodes.cidr, podCidr: pods.cidr };
}

function labNetns(lab: string): string[] {
  return listNetns().filter((ns) => ns.startsWith(`ambit-${lab}-`));
}

function fabricBytes(state: LabState, node: string): { rx: number; tx: number } {
  const [link] = JSON.parse(
    run('ip', ['-n', state.fabric.netns, '-s', '-j', 'link', 'show', 'dev', `ambit-${node}`]),
  );
  return { rx: link.stats64.rx.bytes, tx: link.stats64.tx.bytes };
}

/** Sends `payload` from one netns to host:port and resolves to what came back. */
async function echoThrough(from: NetnsHandle, host: string, port: number, payload: Buffer): Promise<Buffer> {
  const socket = await connected(connectInNetns(from, { host, port }));
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let got = 0;
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        got += chunk.length;
        if (got >= payload.length) resolve(Buffer.concat(chunks));
      });
      socket.on('end', () => reject(new Error(`connection to ${host}:${port} ended after ${got} bytes`)));
      socket.write(payload);
    });
  } finally {
    socket.destroy();
  }
}

describe('lab: two nodes, two pods each, real CNI plugins', () => {
  const lab = uniqueLab();
  const cidrs = uniqueCidrs();
  let state: LabState;

  before(async () => {
    const up = await ambit([
      'lab',
      'up',
      '--network-only',
      '--name',
      lab,
      '--nodes',
      '2',
      '--pods-per-node',
      '2',
      '--node-cidr',
      cidrs.nodeCidr,
      '--pod-cidr',
      cidrs.podCidr,
      '--node-mask',
      '26',
    ]);
    assert.equal(up.code, 0, up.stderr);
    state = loadLab(lab);
  });
  after(async () => {
    await labDown(lab);
  });

  test('the pods came up through bridge + host-local + loopback in their nodes', async () => {
    const status = await ambit(['lab', 'status', '--name', lab, '--json']);
    assert.equal(status.code, 0, status.stderr);
    const shown = JSON.parse(status.stdout) as Omit<LabState, 'pods'> & {
      pods: (LabPod & { present: boolean })[];
    };
    assert.deepEqual(
      shown.pods.map((p) => `${p.namespace}/${p.name}@${p.node}`),
      ['default/n1-pod1@n1', 'default/n1-pod2@n1', 'default/n2-pod1@n2', 'default/n2-pod2@n2'],
    );
    assert.ok(shown.pods.every((p) => p.present));
    for (const pod of state.pods) {
      const node = state.nodes.find((n) => n.name === pod.node)!;
      const base = node.podCidr.split('/')[0]!.split('.').map(Number);
      const ip = pod.ip.split('.').map(Number);
      assert.deepEqual(ip.slice(0, 3), base.slice(0, 3), `${pod.ip} outside ${node.podCidr}`);
      assert.ok(ip[3]! > base[3]! + 1 && ip[3]! < base[3]! + 63, `${pod.ip} outside ${node.podCidr}`);
      const links = run('ip', ['-n', pod.netns, '-o', 'link', 'show']);
      assert.match(links, /: lo: <LOOPBACK,UP/);
      assert.match(links, /: eth0@/);
      assert.ok(pod.cniResult.interfaces?.some((i) => i.name === 'eth0' && i.sandbox === pod.netnsPath));
      assert.ok(existsSync(`/var/run/ambit/lab/${lab}/ipam/${pod.node}/ambit-lab/${pod.ip}`));
    }
    for (const node of state.nodes) {
      const ports = run('ip', ['-n', node.netns, '-o', 'link', 'show', 'master', 'ambit-cni0']);
      assert.equal(ports.trim().split('\n').length, 2, ports);
      assert.match(
        run('ip', ['-n', node.netns, '-o', '-4', 'addr', 'show', 'dev', 'ambit-cni0']),
        new RegExp(node.podGateway),
      );
    }
  });

  test('every pod reaches every other pod over TCP; cross-node bytes cross the fabric bridge', async () => {
    const handles = new Map(state.pods.map((p) => [p.name, NetnsHandle.open(p.netnsPath)]));
    const servers: Server[] = [];
    const seenBy = new Map<string, string[]>();
    try {
      const ports = new Map<string, number>();
      for (const pod of state.pods) {
        const server = await listenInNetns(handles.get(pod.name)!, { host: '0.0.0.0', port: 0 });
        seenBy.set(pod.name, []);
        server.on('connection', (conn) => {
          seenBy.get(pod.name)!.push(conn.remoteAddress ?? '?');
          conn.on('error', () => {});
          conn.pipe(conn);
        });
        servers.push(server);
        ports.set(pod.name, (server.address() as AddressInfo).port);
      }
      const before = { n1: fabricBytes(state, 'n1'), n2: fabricBytes(state, 'n2') };
      let crossPairs = 0;
      for (const from of state.pods) {
        for (const to of state.pods) {
          if (from === to) continue;
          if (from.node !== to.node) crossPairs++;
          const payload = randomBytes(PAYLOAD);
          const echoed = await echoThrough(handles.get(from.name)!, to.ip, ports.get(to.name)!, payload);
          assert.ok(echoed.equals(payload), `${from.name} -> ${to.name}: echo differs`);
        }
      }
      for (const pod of state.pods) {
        const others = state.pods.filter((p) => p !== pod).map((p) => p.ip);
        assert.deepEqual(seenBy.get(pod.name)!.sort(), others.sort(), `clients seen by ${pod.name}`);
      }
      // Each cross-node pair sends PAYLOAD out of its node and gets PAYLOAD back from the other node.
      const after = { n1: fabricBytes(state, 'n1'), n2: fabricBytes(state, 'n2') };
      const perNode = (crossPairs / 2) * PAYLOAD * 2;
      assert.equal(crossPairs, 8);
      assert.ok(after.n1.rx - before.n1.rx >= perNode, `fabric n1 rx grew ${after.n1.rx - before.n1.rx}`);
      assert.ok(after.n2.rx - before.n2.rx >= perNode, `fabric n2 rx grew ${after.n2.rx - before.n2.rx}`);
    } finally {
      for (const s of servers) s.close();
      for (const h of handles.values()) h.close();
    }
  });

  test('lab exec runs inside the pod or node netns and returns the exit code', async () => {
    const pod = state.pods.find((p) => p.name === 'n2-pod1')!;
    const inPod = await ambit([
      'lab',
      'exec',
      '--name',
      lab,
      'default/n2-pod1',
      '--',
      'ip',
      '-o',
      '-4',
      'addr',
    ]);
    assert.equal(inPod.code, 0, inPod.stderr);
    assert.match(inPod.stdout, new RegExp(`eth0\\s+inet ${pod.ip.replaceAll('.', '\\.')}/`));
    const inNode = await ambit([
      'lab',
      'exec',
      '--name',
      lab,
      '--node',
      'n1',
      '--',
      'ip',
      '-o',
      '-4',
      'addr',
    ]);
    assert.match(inNode.stdout, new RegExp(`ambit-up\\s+inet ${state.nodes[0]!.ip.replaceAll('.', '\\.')}/`));
    assert.doesNotMatch(inNode.stdout, /eth0/);
    const failing = await ambit([
      'lab',
      'exec',
      '--name',
      lab,
      'default/n1-pod1',
      '--',
      'sh',
      '-c',
      'exit 7',
    ]);
    assert.equal(failing.code, 7);
  });

  test('pod add and del through the CLI attach and release through CNI', async () => {
    const add = await ambit(['lab', 'pod', 'add', '--name', lab, '--node', 'n2', 'extra/one']);
    assert.equal(add.code, 0, add.stderr);
    const pod = loadLab(lab).pods.find((p) => p.name === 'one')!;
    assert.equal(pod.node, 'n2');
    const ipamFile = `/var/run/ambit/lab/${lab}/ipam/n2/ambit-lab/${pod.ip}`;
    assert.ok(existsSync(ipamFile));
    const del = await ambit(['lab', 'pod', 'del', '--name', lab, 'extra/one']);
    assert.equal(del.code, 0, del.stderr);
    assert.equal(existsSync(ipamFile), false, 'host-local released the IP on DEL');
    assert.equal(listNetns().includes(pod.netns), false);
    assert.equal(
      loadLab(lab).pods.some((p) => p.name === 'one'),
      false,
    );
  });

  test('mistakes get clear errors with codes', async () => {
    const again = await ambit(['lab', 'up', '--name', lab]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists.*\[LAB_EXISTS\]/);
    const noPod = await ambit(['lab', 'exec', '--name', lab, 'default/nope', '--', 'true']);
    assert.match(noPod.stderr, /no pod default\/nope.*\[LAB_POD_NOT_FOUND\]/);
    const noLab = await ambit(['lab', 'status', '--name', uniqueLab()]);
    assert.match(noLab.stderr, /does not exist.*\[LAB_NOT_FOUND\]/);
    const badCidr = await ambit(['lab', 'up', '--name', uniqueLab(), '--pod-cidr', '10.0.0.0/33']);
    assert.match(badCidr.stderr, /\[LAB_BAD_CIDR\]/);
    const usage = await ambit(['lab', 'exec', '--name', lab, 'default/n1-pod1']);
    assert.equal(usage.code, 2);
    const badFamily = await ambit(['lab', 'up', '--name', uniqueLab(), '--ip-family', 'ipv5']);
    assert.equal(badFamily.code, 2);
    assert.match(badFamily.stderr, /--ip-family must be one of ipv4, ipv6, dual \(got 'ipv5'\)/);
  });

  test('lab down removes every netns, link, bridge and the IPAM state; a second down is a no-op', async () => {
    const down = await ambit(['lab', 'down', '--name', lab]);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(labNetns(lab), []);
    assert.equal(existsSync(`/var/run/ambit/lab/${lab}`), false);
    assert.equal(
      readdirSync('/var/run/netns').some((f) => f.startsWith(`ambit-${lab}-`)),
      false,
    );
    const again = await ambit(['lab', 'down', '--name', lab]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /not running/);
  });
});

describe('lab down after a crash', () => {
  const lab = uniqueLab();
  after(async () => {
    await labDown(lab);
  });

  test('finds the leftovers by prefix when the state file is gone', async () => {
    const state = await labUp({ name: lab, nodes: 2, ...uniqueCidrs(), nodeMask: 26 });
    await createPod(lab, 'n1', { namespace: 'crash', name: 'a' });
    await createPod(lab, 'n2', { namespace: 'crash', name: 'b' });
    assert.equal(labNetns(lab).length, 5);
    rmSync(`/var/run/ambit/lab/${lab}/state.json`);
    const report = await labDown(lab);
    assert.equal(report.removedNetns.length, 5);
    assert.deepEqual(labNetns(lab), []);
    assert.equal(existsSync(`/var/run/ambit/lab/${lab}`), false);
    assert.equal(state.nodes.length, 2);
  });
});

describe('lab prerequisites', () => {
  test('a non-root user gets LAB_NOT_ROOT and nothing is created', async () => {
    const lab = uniqueLab();
    for (const args of [['lab', 'up', '--name', lab], ['demo']]) {
      const r = await ambit(args, { user: 65534 });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /needs root: run it with sudo.*\[LAB_NOT_ROOT\]/);
    }
    assert.deepEqual(labNetns(lab), []);
  });

  test('a missing CNI plugin names the Debian package', () => {
    assert.throws(() => checkPrerequisites(['/nonexistent/ambit-cni']), {
      code: 'CNI_PLUGIN_NOT_FOUND',
      message: /'bridge' not found in \/nonexistent\/ambit-cni.*apt-get install containernetworking-plugins/,
    });
  });
});
