/**
 * ztunnel as a client of the control plane: two `ambit ztunnel` processes get their workloads over
 * delta xDS and their pods' certificates from the CA (impersonating pods on their node with a
 * pod-bound token), then carry cross-node traffic over HBONE. Restarting the control plane does not
 * break an established tunnel, and the ztunnels reconnect.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startControlPlane } from '../../../src/controlplane/index.js';
import { type LabPod, type LabState, labDown, labUp } from '../../../src/lab/index.js';
import { createRedirector } from '../../../src/redirect/index.js';
import { connected, connectInNetns, listenInNetns, NetnsHandle } from '../../../src/sys/index.js';
import { workloadUid, ZdsServer } from '../../../src/zds/index.js';
import { Harness } from '../../controlplane/helpers.js';
import { sha256 } from '../../helpers/bytes.js';
import { uniqueLabCidrs } from '../../helpers/netns.js';
import { eventually, httpIn, ZtunnelCli } from '../../ztunnel/fixtures/ztunnel-cli.js';

/** Free loopback ports for the two ztunnels' admin, metrics and readiness servers (both run in this netns). */
async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    servers.push(s);
    ports.push((s.address() as { port: number }).port);
  }
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

describe('ztunnel with the control plane: xDS workloads, CA certificates, HBONE across nodes', () => {
  const lab = `tc${randomBytes(4).toString('hex')}`;
  let harness: Harness;
  let state: LabState;
  const ztunnels = new Map<string, ZtunnelCli>();
  const readyPorts = new Map<string, number>();
  const agents: ZdsServer[] = [];
  const handles: NetnsHandle[] = [];
  let app: Server | undefined;
  let hereNetns: NetnsHandle;
  const pod = (name: string): LabPod => state.pods.find((p) => p.name === name)!;

  before(async () => {
    harness = await Harness.start();
    state = await labUp({
      name: lab,
      nodes: 2,
      podsPerNode: 1,
      ...uniqueLabCidrs(),
    });
    hereNetns = NetnsHandle.current();
    handles.push(hereNetns);
    // The cluster as the API server knows it: both pods enrolled, and a ztunnel pod per node.
    for (const p of state.pods) {
      harness.pod({
        namespace: p.namespace,
        name: p.name,
        ip: p.ip,
        node: p.node,
        serviceAccount: `sa-${p.name}`,
        annotations: { 'ambient.istio.io/redirection': 'enabled' },
      });
    }
    const rootFile = join(harness.dir, 'root-cert.pem');
    writeFileSync(rootFile, harness.cp.rootPem);
    const ports = await freePorts(6);
    for (const [i, node] of state.nodes.entries()) {
      harness.pod({
        namespace: 'istio-system',
        name: `ztunnel-${node.name}`,
        ip: node.ip,
        node: node.name,
        serviceAccount: 'ztunnel',
      });
      const tokenFile = join(harness.dir, `${node.name}.token`);
      writeFileSync(
        tokenFile,
        await harness.token('istio-system', 'ztunnel', { pod: `ztunnel-${node.name}` }),
      );
      const agent = ZdsServer.listen({
        path: join(harness.dir, `${node.name}.sock`),
        pods: { snapshot: () => [] },
      });
      agents.push(agent);
      const [admin, metrics, ready] = ports.slice(i * 3, i * 3 + 3) as [number, number, number];
      readyPorts.set(node.name, ready);
      ztunnels.set(
        node.name,
        new ZtunnelCli([
          ...['--inpod-uds', agent.path, '--node-name', node.name],
          ...['--ca-address', harness.address, '--xds-address', harness.address],
          ...['--ca-root-ca', rootFile, '--xds-root-ca', rootFile, '--auth-token', tokenFile],
          ...[
            '--pod-name',
            `ztunnel-${node.name}`,
            '--pod-namespace',
            'istio-system',
            '--instance-ip',
            node.ip,
          ],
          ...['--admin-addr', `127.0.0.1:${admin}`, '--metrics-addr', `127.0.0.1:${metrics}`],
          ...['--readiness-addr', `127.0.0.1:${ready}`],
        ]),
      );
    }
    for (const [name, z] of ztunnels) {
      await eventually(`${name}'s ztunnel ready (xDS state received)`, async () => {
        try {
          return (await httpIn(hereNetns, readyPorts.get(name)!, '/healthz/ready')).status === 200;
        } catch {
          return !z.running;
        }
      });
      assert.ok(z.running, `ztunnel ${name} exited: ${z.stderr}\n${z.lines.join('\n')}`);
    }
    const redirector = createRedirector({ backend: 'iptables', inbound: 'tproxy' });
    for (const p of state.pods) {
      await redirector.apply(p.netnsPath, [p.ip]);
      const agent = agents[state.nodes.findIndex((n) => n.name === p.node)]!;
      await agent.addWorkload(
        workloadUid(p.uid),
        { name: p.name, namespace: p.namespace, serviceAccount: `sa-${p.name}` },
        p.netnsPath,
      );
    }
    const server = NetnsHandle.open(pod('n2-pod1').netnsPath);
    handles.push(server);
    app = await listenInNetns(server, { port: 8000, server: { allowHalfOpen: true } });
    app.on('connection', (s: Socket) => {
      s.on('error', () => {});
      s.pipe(s);
    });
  });

  after(async () => {
    for (const z of ztunnels.values()) z.signal('SIGKILL');
    await Promise.all([...ztunnels.values()].map((z) => z.exited));
    for (const a of agents) a.close();
    await new Promise((r) => (app ? app.close(r) : r(undefined)));
    for (const h of handles) h.close();
    if (state) await labDown(lab);
    await harness?.stop();
  });

  test('cross-node traffic goes over HBONE with the control plane identities; a control plane restart keeps it', async () => {
    const client = NetnsHandle.open(pod('n1-pod1').netnsPath);
    handles.push(client);
    const s = await connected(connectInNetns(client, { host: pod('n2-pod1').ip, port: 8000 }));
    const exchange = async (size: number) => {
      const body = randomBytes(size);
      const chunks: Buffer[] = [];
      let got = 0;
      const done = new Promise<void>((resolve, reject) => {
        const onData = (d: Buffer) => {
          chunks.push(d);
          got += d.length;
          if (got >= size) {
            s.off('data', onData);
            resolve();
          }
        };
        s.on('data', onData);
        s.once('error', reject);
      });
      s.write(body);
      await done;
      assert.equal(sha256(Buffer.concat(chunks)), sha256(body));
    };
    await exchange(1024 * 1024);

    // Restart the control plane on the same address and CA directory.
    const address = harness.cp.address;
    await harness.cp.close();
    await exchange(256 * 1024); // the established tunnel does not depend on the control plane
    const [host, port] = [
      address.slice(0, address.lastIndexOf(':')),
      address.slice(address.lastIndexOf(':') + 1),
    ];
    const restarted = await startControlPlane({
      kubeconfig: join(harness.dir, 'kubeconfig'),
      caDir: join(harness.dir, 'ca'),
      listen: `${host}:${port}`,
    });
    (harness as { cp: typeof restarted }).cp = restarted;
    // Both ztunnels reconnect (back-off capped at 15 s) and ACK both resource types again.
    await eventually(
      'both ztunnels to reconnect and ACK',
      () => restarted.xds.stats.streams === 2 && restarted.xds.stats.acks >= 4,
      30_000,
    );
    await exchange(64 * 1024);
    s.destroy();
    // And a new connection after the restart works too.
    const s2 = await connected(
      connectInNetns(client, { host: pod('n2-pod1').ip, port: 8000, allowHalfOpen: true }),
    );
    const echoed = new Promise<Buffer>((resolve) => {
      const parts: Buffer[] = [];
      s2.on('data', (d: Buffer) => parts.push(d));
      s2.once('end', () => resolve(Buffer.concat(parts)));
    });
    s2.end('after the restart\n');
    assert.equal((await echoed).toString(), 'after the restart\n');
    s2.destroy();
    const line = await ztunnels
      .get('n1')!
      .waitFor(new RegExp(`connection complete\t.*dst\\.addr=${pod('n2-pod1').ip}:15008`));
    assert.match(line[0]!, /src\.identity="spiffe:\/\/cluster\.local\/ns\/default\/sa\/sa-n1-pod1" /);
    assert.match(line[0]!, /dst\.identity="spiffe:\/\/cluster\.local\/ns\/default\/sa\/sa-n2-pod1" /);
    // The CA and xDS are dialled at an IP: no IP as TLS SNI, so Node printed no DEP0123 warning.
    for (const [name, z] of ztunnels)
      assert.doesNotMatch(
        `${z.stderr}\n${z.lines.join('\n')}`,
        /DEP0123|ServerName to an IP/,
        `ztunnel ${name}`,
      );
  });
});
