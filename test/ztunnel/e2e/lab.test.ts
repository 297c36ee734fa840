/**
 * `ambit ztunnel` in the lab: two nodes, a ztunnel process per node running in the node netns, one
 * test ZdsServer per node as its agent. n1-pod1 (client), n1-pod2 and n2-pod1 are enrolled (seed
 * rules + ZDS Add); n2-pod2 is not in the mesh. 10 MiB each way to each server, checked by sha256.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type LabPod, type LabState, labDown, labUp } from '../../../src/lab/index.js';
import { createRedirector } from '../../../src/redirect/index.js';
import { connected, connectInNetns, listenInNetns, NetnsHandle } from '../../../src/sys/index.js';
import { workloadUid, ZdsServer } from '../../../src/zds/index.js';
import { readAll, sha256 } from '../../helpers/bytes.js';
import { uniqueLabCidrs } from '../../helpers/netns.js';
import { eventually, httpIn, ZtunnelCli } from '../../ztunnel/fixtures/ztunnel-cli.js';

const SIZE = 10 * 1024 * 1024;
interface Seen {
  remote: string;
  digest: string;
}

describe('ambit ztunnel processes in a two-node lab', () => {
  const lab = `tz${randomBytes(4).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'ambit-ztl-'));
  const reply = randomBytes(SIZE);
  const procs = new Map<string, ZtunnelCli>();
  const agents: ZdsServer[] = [];
  const handles: NetnsHandle[] = [];
  const apps: Server[] = [];
  const seen = new Map<string, Seen[]>();
  let state: LabState;
  let client: LabPod;
  let clientNetns: NetnsHandle;
  const pod = (name: string) => state.pods.find((p) => p.name === name)!;
  const nodeHandle = new Map<string, NetnsHandle>();

  before(async () => {
    state = await labUp({
      name: lab,
      nodes: 2,
      podsPerNode: 2,
      ...uniqueLabCidrs(),
    });
    client = pod('n1-pod1');
    clientNetns = NetnsHandle.open(client.netnsPath);
    handles.push(clientNetns);
    for (const node of state.nodes) {
      const h = NetnsHandle.open(node.netnsPath);
      handles.push(h);
      nodeHandle.set(node.name, h);
      const agent = ZdsServer.listen({ path: join(dir, `${node.name}.sock`), pods: { snapshot: () => [] } });
      agents.push(agent);
      const proc = new ZtunnelCli(['--inpod-uds', agent.path, '--node-name', node.name], {
        netns: node.netns,
      });
      procs.set(node.name, proc);
      await eventually(`${node.name}'s ztunnel ready`, async () => {
        try {
          return (await httpIn(h, 15021, '/healthz/ready')).status === 200;
        } catch {
          return false;
        }
      });
    }
    const redirector = createRedirector({ backend: 'iptables', inbound: 'tproxy' });
    for (const name of ['n1-pod1', 'n1-pod2', 'n2-pod1']) {
      const p = pod(name);
      await redirector.apply(p.netnsPath, [p.ip]);
      const agent = agents[state.nodes.findIndex((n) => n.name === p.node)]!;
      await agent.addWorkload(
        workloadUid(p.uid),
        { name: p.name, namespace: p.namespace, serviceAccount: 'default' },
        p.netnsPath,
      );
    }
    // Server apps: read the request to its end, then answer with `reply`; they record what they saw.
    for (const name of ['n1-pod2', 'n2-pod1', 'n2-pod2']) {
      const h = NetnsHandle.open(pod(name).netnsPath);
      handles.push(h);
      const app = await listenInNetns(h, { port: 8000, server: { allowHalfOpen: true } });
      apps.push(app);
      seen.set(name, []);
      app.on('connection', (s: Socket) => {
        s.on('error', () => {});
        void readAll(s).then((data) => {
          seen
            .get(name)!
            .push({ remote: (s.remoteAddress ?? '').replace('::ffff:', ''), digest: sha256(data) });
          s.end(reply);
        });
      });
    }
  });

  after(async () => {
    for (const p of procs.values()) p.signal('SIGKILL');
    await Promise.all([...procs.values()].map((p) => p.exited));
    for (const a of agents) a.close();
    await Promise.all(apps.map((a) => new Promise((r) => a.close(r))));
    for (const h of handles) h.close();
    await labDown(lab);
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [target, label] of [
    ['n1-pod2', 'same node'],
    ['n2-pod1', 'cross node'],
    ['n2-pod2', 'to a pod outside the mesh'],
  ] as const) {
    test(`client pod -> ${target} (${label}): 10 MiB each way intact, the app sees the client pod's IP`, async () => {
      const server = pod(target);
      const request = randomBytes(SIZE);
      const s = await connected(
        connectInNetns(clientNetns, { host: server.ip, port: 8000, allowHalfOpen: true }),
      );
      const got = readAll(s);
      s.end(request);
      assert.equal(sha256(await got), sha256(reply));
      s.destroy();
      await eventually('the app to finish', () => seen.get(target)!.length === 1);
      assert.deepEqual(seen.get(target), [{ remote: client.ip, digest: sha256(request) }]);

      const out = await procs
        .get('n1')!
        .waitFor(
          new RegExp(
            `\tinfo\taccess\tconnection complete\t.*dst\\.addr=${server.ip}:8000 direction="outbound"`,
          ),
        );
      assert.match(out[0]!, new RegExp(`src\\.addr=${client.ip}:\\d+ `));
      assert.match(out[0]!, new RegExp(`bytes_sent=${SIZE} bytes_recv=${SIZE} `));
      const inboundOn = target === 'n2-pod2' ? undefined : server.node;
      for (const [node, proc] of procs) {
        const inbound = proc.matching(
          new RegExp(
            `connection complete\tsrc\\.addr=${client.ip}:\\d+ dst\\.addr=${server.ip}:8000 direction="inbound"`,
          ),
        );
        if (node === inboundOn) {
          await proc.waitFor(
            new RegExp(
              `dst\\.addr=${server.ip}:8000 direction="inbound" bytes_sent=${SIZE} bytes_recv=${SIZE}`,
            ),
          );
        } else assert.equal(inbound.length, 0, `no inbound log on ${node} for ${target}`);
      }
    });
  }

  test('both ztunnels account the traffic on /metrics', async () => {
    const metric = async (node: string) => (await httpIn(nodeHandle.get(node)!, 15020, '/metrics')).body;
    const n1 = await metric('n1');
    const n2 = await metric('n2');
    // n1 reports all three outbound connections (source) and the same-node inbound one (destination).
    assert.match(n1, /^istio_tcp_connections_opened_total\{reporter="source"[^}]*\} 3$/m);
    assert.match(
      n1,
      new RegExp(`^istio_tcp_received_bytes_total\\{reporter="source"[^}]*\\} ${3 * SIZE}$`, 'm'),
    );
    assert.match(n1, new RegExp(`^istio_tcp_sent_bytes_total\\{reporter="source"[^}]*\\} ${3 * SIZE}$`, 'm'));
    assert.match(n1, /^istio_tcp_connections_closed_total\{reporter="destination"[^}]*\} 1$/m);
    assert.match(n1, /^workload_manager_active_proxy_count 2$/m);
    // n2 only sees the cross-node connection, inbound; the non-mesh pod is nobody's.
    assert.match(n2, /^istio_tcp_connections_opened_total\{reporter="destination"[^}]*\} 1$/m);
    assert.match(
      n2,
      new RegExp(`^istio_tcp_sent_bytes_total\\{reporter="destination"[^}]*\\} ${SIZE}$`, 'm'),
    );
    assert.doesNotMatch(n2, /reporter="source"/);
    assert.match(n2, /^workload_manager_active_proxy_count 1$/m);
  });
});
