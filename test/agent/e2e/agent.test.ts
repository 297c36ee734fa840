/**
 * The node agent end to end: the lab API server, a real `ambit ztunnel` process (own netns), pod
 * netns with real rules, the host probe set in a netns standing in for the node, and the agent
 * in-process (restarted like a DaemonSet pod would be).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { Agent } from '../../../src/agent/agent.js';
import { parseAgentConfig } from '../../../src/agent/config.js';
import { wireIps } from '../../../src/cni/event.js';
import { postCmdAdd } from '../../../src/cni/plugin/agent-client.js';
import { type ApiServer, startApiServer } from '../../../src/lab/apiserver/index.js';
import { findResource } from '../../../src/lab/apiserver/resources.js';
import { createRedirector } from '../../../src/redirect/index.js';
import { connected, connectInNetns, listenInNetns, NetnsHandle } from '../../../src/sys/index.js';
import { PauseProcess } from '../../agent/fixtures/pause.js';
import { run, TestNetns, uniqueSubnet, VethPair } from '../../helpers/netns.js';
import { CONDITION_DEADLINE_MS } from '../../helpers/wait.js';
import { eventually, ZtunnelCli } from '../../ztunnel/fixtures/ztunnel-cli.js';

const MODE = 'istio.io/dataplane-mode';
const ANN = 'ambient.istio.io/redirection';
const NODE = 'node-a';
const PODS = findResource('', 'v1', 'pods')!;
const NAMESPACES = findResource('', 'v1', 'namespaces')!;

/** Whether a socket listens on `port` inside the named netns (ztunnel's own listeners refuse loops to themselves). */
function listening(netns: TestNetns, port: number): boolean {
  return run('ip', ['netns', 'exec', netns.name, 'ss', '-Hntl', `sport = :${port}`]).trim() !== '';
}

function echoOnce(socket: Socket, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got >= payload.length) resolve(Buffer.concat(chunks));
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`closed after ${got} bytes`)));
    socket.write(payload);
  });
}

describe('ambit agent (lab API server, real ztunnel, real netns)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-agent-e2e-'));
  const zdsPath = join(dir, 'ztunnel.sock');
  const suffix = randomBytes(3).toString('hex');
  const meshNs = `mesh-${suffix}`;
  const laterNs = `later-${suffix}`;
  const nets: TestNetns[] = [];
  const handles: NetnsHandle[] = [];
  const pauses: PauseProcess[] = [];
  const sockets: Socket[] = [];
  let api: ApiServer;
  let kc: KubeConfig;
  let node: TestNetns;
  let pair: VethPair;
  let podA: NetnsHandle;
  let app: Server;
  let ztunnel: ZtunnelCli | undefined;
  let agent: Agent | undefined;
  // The agent's default rules: the seed's plus Istio's DNS capture.
  const redirector = createRedirector({ dnsCapture: true });

  const newNetns = () => {
    const ns = new TestNetns();
    nets.push(ns);
    return ns;
  };
  const config = (...extra: string[]) =>
    parseAgentConfig(
      [
        '--node-name',
        NODE,
        '--run-dir',
        join(dir, 'run'),
        '--zds-socket',
        zdsPath,
        '--host-netns',
        node.path,
        '--health-addr',
        '127.0.0.1:0',
        '--metrics-addr',
        '127.0.0.1:0',
        ...extra,
      ],
      {},
    );
  const startAgent = async (...extra: string[]) => {
    agent = await Agent.start(config(...extra), { kubeConfig: kc, probeInstallAttempts: 1 });
    return agent;
  };
  const startZtunnel = () => {
    const zns = newNetns();
    ztunnel = new ZtunnelCli(
      [
        '--inpod-uds',
        zdsPath,
        '--local-xds-path',
        join(dir, 'xds.yaml'),
        '--connection-termination-deadline',
        '1s',
      ],
      {
        netns: zns.name,
      },
    );
    return ztunnel;
  };
  const createPod = (namespace: string, name: string, status?: { ip: string }) => {
    const pod = api.store.create(PODS, namespace, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name },
      spec: { nodeName: NODE, containers: [{ name: 'app', image: 'busybox' }] },
    });
    if (status) setPodIp(namespace, name, status.ip);
    return pod.metadata.uid as string;
  };
  const setPodIp = (namespace: string, name: string, ip: string) =>
    api.store.patch(
      PODS,
      namespace,
      name,
      'merge',
      { status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] } },
      'status',
    );
  const annotation = (namespace: string, name: string) =>
    (api.store.find(PODS, namespace, name)?.metadata.annotations as Record<string, string> | undefined)?.[
      ANN
    ];
  const probeEntries = () => node.exec('ipset', ['save', 'istio-inpod-probes-v4']);
  const cniAdd = (namespace: string, name: string, netns: string, ip: string) =>
    postCmdAdd(join(dir, 'run', 'pluginevent.sock'), {
      Netns: netns,
      PodName: name,
      PodNamespace: namespace,
      IPs: wireIps([{ address: `${ip}/24` }]),
    });
  const readyz = (a: Agent) =>
    new Promise<number>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: a.healthAddress!.port, path: '/readyz' }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
        .on('error', reject);
    });

  before(async () => {
    api = await startApiServer({ kubeconfigPath: join(dir, 'kubeconfig') });
    kc = new KubeConfig();
    kc.loadFromFile(join(dir, 'kubeconfig'));
    node = newNetns();
    pair = new VethPair();
    nets.push(pair.a, pair.b);
    podA = NetnsHandle.open(pair.a.path);
    handles.push(podA);
    const b = NetnsHandle.open(pair.b.path);
    app = await listenInNetns(b, { port: 8000 });
    b.close();
    app.on('connection', (s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    writeFileSync(
      join(dir, 'xds.yaml'),
      [
        'workloads:',
        '  - name: peer',
        '    namespace: default',
        `    workloadIps: ["${pair.addrB}"]`,
        '    protocol: TCP',
        '',
      ].join('\n'),
    );
    api.store.create(NAMESPACES, undefined, { metadata: { name: meshNs, labels: { [MODE]: 'ambient' } } });
    api.store.create(NAMESPACES, undefined, { metadata: { name: laterNs } });
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await agent?.stop();
    if (ztunnel) await ztunnel.stop();
    for (const p of pauses) await p.stop();
    app?.close();
    for (const h of handles) h.close();
    for (const n of nets) n.remove();
    await api?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('without ztunnel a CNI event fails (rules stay, annotation pending); once ztunnel runs it enrolls before the POST returns', async () => {
    const uid = createPod(meshNs, 'web');
    const a = await startAgent();
    assert.equal(await readyz(a), 200);

    await assert.rejects(cniAdd(meshNs, 'web', pair.a.path, pair.addrA), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'AGENT_REFUSED');
      assert.match(err.message, /HTTP 500: .*no ztunnel connection/);
      return true;
    });
    assert.equal(annotation(meshNs, 'web'), 'pending');
    assert.equal((await redirector.verify(podA, [pair.addrA])).ok, true, 'rules stay in place (fail closed)');
    assert.doesNotMatch(probeEntries(), new RegExp(pair.addrA.replaceAll('.', '\\.')));

    const z = startZtunnel();
    await z.waitFor(/pod received snapshot sent/);
    await cniAdd(meshNs, 'web', pair.a.path, pair.addrA);
    assert.equal(annotation(meshNs, 'web'), 'enabled');
    assert.equal(listening(pair.a, 15001), true, 'ztunnel listens inside the pod');
    assert.equal((await redirector.verify(podA, [pair.addrA])).ok, true);
    assert.match(
      probeEntries(),
      new RegExp(`add istio-inpod-probes-v4 ${pair.addrA.replaceAll('.', '\\.')} comment "${uid}"`),
    );
    const metrics = await (await fetch(`http://127.0.0.1:${a.metricsAddress!.port}/metrics`)).text();
    assert.match(metrics, /istio_cni_plugin_requests_total\{response_code="500"\} 1/);
    assert.match(metrics, /istio_cni_plugin_requests_total\{response_code="200"\} 1/);
    assert.match(metrics, /ztunnel_connected 1/);

    // Traffic from the pod goes through ztunnel's outbound listener to the peer.
    setPodIp(meshNs, 'web', pair.addrA);
    const s = await connected(connectInNetns(podA, { host: pair.addrB, port: 8000 }));
    sockets.push(s);
    const payload = randomBytes(64 * 1024);
    assert.deepEqual(await echoOnce(s, payload), payload);
  });

  it('labelling a namespace enrolls its running pods (netns found through /proc) and un-labelling takes them out', async () => {
    const podNs = newNetns();
    const ip = uniqueSubnet().host(7);
    podNs.exec('ip', ['addr', 'add', `${ip}/32`, 'dev', 'lo']);
    const uid = createPod(laterNs, 'api', { ip });
    pauses.push(new PauseProcess(podNs.name, uid));
    const handle = NetnsHandle.open(podNs.path);
    handles.push(handle);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(annotation(laterNs, 'api'), undefined, 'not enrolled while the namespace is unlabelled');

    api.store.patch(NAMESPACES, undefined, laterNs, 'merge', { metadata: { labels: { [MODE]: 'ambient' } } });
    await eventually(
      'pod api enrolled',
      () => annotation(laterNs, 'api') === 'enabled',
      CONDITION_DEADLINE_MS,
    );
    assert.equal((await redirector.verify(handle, [ip])).ok, true);
    assert.equal(listening(podNs, 15001), true);

    api.store.patch(NAMESPACES, undefined, laterNs, 'merge', { metadata: { labels: { [MODE]: null } } });
    await eventually(
      'pod api un-enrolled',
      () => annotation(laterNs, 'api') === undefined,
      CONDITION_DEADLINE_MS,
    );
    const rules = run('ip', ['netns', 'exec', podNs.name, 'iptables-save']);
    assert.doesNotMatch(rules, /ISTIO_/);
    await eventually('ztunnel listeners gone', async () => !listening(podNs, 15001), CONDITION_DEADLINE_MS);
    assert.doesNotMatch(probeEntries(), new RegExp(ip.replaceAll('.', '\\.')));
  });

  it('restarting the agent keeps traffic flowing and reconciles pods deleted meanwhile', async () => {
    const goneNs = newNetns();
    const goneIp = uniqueSubnet().host(9);
    goneNs.exec('ip', ['addr', 'add', `${goneIp}/32`, 'dev', 'lo']);
    createPod(meshNs, 'gone');
    await cniAdd(meshNs, 'gone', goneNs.path, goneIp);
    setPodIp(meshNs, 'gone', goneIp);
    const goneHandle = NetnsHandle.open(goneNs.path);
    handles.push(goneHandle);
    assert.equal(listening(goneNs, 15001), true);
    const z = ztunnel!;
    const snapshotsBefore = z.matching(/pod received snapshot sent/).length;

    const s = sockets[0]!;
    await agent!.stop();
    agent = undefined;
    // While the agent is away: the open connection still carries bytes, and a pod goes away.
    const payload = randomBytes(32 * 1024);
    assert.deepEqual(await echoOnce(s, payload), payload);
    api.store.delete(PODS, meshNs, 'gone', { gracePeriodSeconds: 0 });

    await startAgent();
    await z.waitFor(/pod received snapshot sent/, snapshotsBefore + 1);
    await z.waitFor(/not in snapshot, stopping proxy/);
    await eventually(
      'proxy of the deleted pod stopped',
      async () => !listening(goneNs, 15001),
      CONDITION_DEADLINE_MS,
    );
    assert.equal(listening(pair.a, 15001), true, 'the enrolled pod keeps its proxy');
    assert.doesNotMatch(
      probeEntries(),
      new RegExp(goneIp.replaceAll('.', '\\.')),
      'probe entry of the deleted pod pruned',
    );
    assert.match(probeEntries(), new RegExp(pair.addrA.replaceAll('.', '\\.')));
    const again = randomBytes(16 * 1024);
    assert.deepEqual(await echoOnce(s, again), again);
    const fresh = await connected(connectInNetns(podA, { host: pair.addrB, port: 8000 }));
    sockets.push(fresh);
    assert.deepEqual(await echoOnce(fresh, again), again);
    assert.equal(annotation(meshNs, 'web'), 'enabled');
  });

  it('an uninstall (its DaemonSet not found) takes the node out of the mesh: rules, ztunnel, probe set, annotation, host rules', async () => {
    await agent!.stop();
    // A process in the pod's netns (as a real pod has), so the restarted agent finds it through /proc.
    pauses.push(new PauseProcess(pair.a.name, api.store.find(PODS, meshNs, 'web')!.metadata.uid as string));
    const snapshotsBefore = ztunnel!.matching(/pod received snapshot sent/).length;
    // In a DaemonSet the agent knows its namespace; the lab API server has no DaemonSet there (404).
    const a = await startAgent('--pod-namespace', 'istio-system');
    // ztunnel reconnects to the new agent after its back-off; the uninstall can only reach a connected
    // ztunnel (a later one drops the pod when the next agent's snapshot lacks it).
    await ztunnel!.waitFor(/pod received snapshot sent/, snapshotsBefore + 1);
    assert.equal(await readyz(a), 200);
    assert.equal(annotation(meshNs, 'web'), 'enabled');
    assert.equal(listening(pair.a, 15001), true);
    assert.match(node.exec('iptables-save', ['-t', 'nat']), /ISTIO/);

    const intent = await a.shutdown();
    agent = undefined;
    assert.equal(intent.kind, 'uninstall');
    assert.match(intent.reason, /daemonset istio-system\/ambit-cni-node not found/);
    assert.equal(annotation(meshNs, 'web'), undefined, 'annotation removed');
    assert.doesNotMatch(
      run('ip', ['netns', 'exec', pair.a.name, 'iptables-save']),
      /ISTIO_/,
      'in-pod rules removed',
    );
    await eventually('ztunnel dropped the pod', async () => !listening(pair.a, 15001), CONDITION_DEADLINE_MS);
    assert.throws(() => probeEntries(), 'the probe set is destroyed');
    assert.doesNotMatch(node.exec('iptables-save', ['-t', 'nat']), /ISTIO/, 'host probe rules removed');

    // The pod's traffic now goes straight to the peer: a new connection echoes without ztunnel.
    const direct = await connected(connectInNetns(podA, { host: pair.addrB, port: 8000 }));
    sockets.push(direct);
    const payload = randomBytes(16 * 1024);
    assert.deepEqual(await echoOnce(direct, payload), payload);
    const port = direct.localPort;
    direct.destroy();
    assert.deepEqual(ztunnel!.matching(new RegExp(`:${port}\\b`)), [], 'ztunnel did not carry it');
  });
});
