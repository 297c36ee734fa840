/**
 * A CNI ADD the plugin gave up on is never applied. The node agent runs as a real process so it can
 * be stalled (SIGSTOP) while the plugin's ADD is in flight; the plugin's client times out (CNI code
 * 11 in the plugin); on SIGCONT the agent must drop that request: no rules, no proxy, no probe entry
 * and no annotation for the abandoned netns. The kubelet's retry with the pod's live netns then works.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { wireIps } from '../../../src/cni/event.js';
import { agentNotReady, postCmdAdd } from '../../../src/cni/plugin/agent-client.js';
import { type ApiServer, startApiServer } from '../../../src/lab/apiserver/index.js';
import { findResource } from '../../../src/lab/apiserver/resources.js';
import { AgentProcess } from '../../agent/fixtures/agent-process.js';
import { run, TestNetns, uniqueSubnet } from '../../helpers/netns.js';
import { eventually, ZtunnelCli } from '../../ztunnel/fixtures/ztunnel-cli.js';

const MODE = 'istio.io/dataplane-mode';
const ANN = 'ambient.istio.io/redirection';
const NODE = 'node-a';
const PODS = findResource('', 'v1', 'pods')!;
const NAMESPACES = findResource('', 'v1', 'namespaces')!;

const listening = (netns: TestNetns, port: number) =>
  run('ip', ['netns', 'exec', netns.name, 'ss', '-Hntl', `sport = :${port}`]).trim() !== '';
const hasRules = (netns: TestNetns) =>
  run('ip', ['netns', 'exec', netns.name, 'iptables-save']).includes('ISTIO_');

describe('a CNI ADD whose plugin has gone is not applied (agent stalled by SIGSTOP)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-agent-abandon-'));
  const zdsPath = join(dir, 'ztunnel.sock');
  const eventSocket = join(dir, 'run', 'pluginevent.sock');
  const meshNs = `mesh-${randomBytes(3).toString('hex')}`;
  const nets: TestNetns[] = [];
  let api: ApiServer;
  let node: TestNetns;
  let agent: AgentProcess | undefined;
  let ztunnel: ZtunnelCli | undefined;

  const newNetns = (ip?: string) => {
    const ns = new TestNetns();
    nets.push(ns);
    if (ip) ns.exec('ip', ['addr', 'add', `${ip}/32`, 'dev', 'lo']);
    return ns;
  };
  const annotation = (name: string) =>
    (api.store.find(PODS, meshNs, name)?.metadata.annotations as Record<string, string> | undefined)?.[ANN];
  const probeEntries = () => node.exec('ipset', ['save', 'istio-inpod-probes-v4']);
  const cniAdd = (name: string, netns: TestNetns, ip: string) =>
    postCmdAdd(eventSocket, {
      Netns: netns.path,
      PodName: name,
      PodNamespace: meshNs,
      IPs: wireIps([{ address: `${ip}/24` }]),
    });

  before(async () => {
    api = await startApiServer({ kubeconfigPath: join(dir, 'kubeconfig') });
    node = newNetns();
    writeFileSync(join(dir, 'xds.yaml'), 'workloads: []\n');
    api.store.create(NAMESPACES, undefined, { metadata: { name: meshNs, labels: { [MODE]: 'ambient' } } });
    // Created before the agent starts, so its informer knows the pod when the ADD comes.
    api.store.create(PODS, meshNs, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web' },
      spec: { nodeName: NODE, containers: [{ name: 'app', image: 'busybox' }] },
    });
    ztunnel = new ZtunnelCli(['--inpod-uds', zdsPath, '--local-xds-path', join(dir, 'xds.yaml')], {
      netns: newNetns().name,
    });
    agent = new AgentProcess([
      '--node-name',
      NODE,
      '--run-dir',
      join(dir, 'run'),
      '--zds-socket',
      zdsPath,
      '--host-netns',
      node.path,
      '--kubeconfig',
      join(dir, 'kubeconfig'),
      '--health-addr',
      '127.0.0.1:0',
      '--metrics-addr',
      '127.0.0.1:0',
    ]);
    await agent.waitFor(/node agent ready/);
    await eventually(
      'agent answers CNI STATUS',
      async () => (await agentNotReady(eventSocket, 2000)) === undefined,
      30_000,
    );
    await ztunnel.waitFor(/pod received snapshot sent/, 1, 30_000);
  });

  after(async () => {
    await agent?.stop();
    await ztunnel?.stop();
    for (const n of nets) n.remove();
    await api?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the abandoned ADD leaves nothing behind; the retried ADD with the live netns enrolls the pod', async () => {
    const a = agent!;
    const staleIp = uniqueSubnet().host(4);
    const stale = newNetns(staleIp);

    a.signal('SIGSTOP');
    const started = Date.now();
    await assert.rejects(cniAdd('web', stale, staleIp), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'AGENT_UNREACHABLE');
      assert.match(err.message, /no answer within 5000 ms/);
      return true;
    });
    const gaveUpAfterMs = Date.now() - started;
    a.signal('SIGCONT');
    const agentLog = () =>
      `plugin gave up after ${gaveUpAfterMs} ms; agent log:\n${a.lines.slice(-30).join('\n')}\n${a.stderr}`;

    // The kubelet's retry, with the pod's live sandbox. The agent accepts connections in order and
    // runs one pod's adds one at a time, so when this answers the abandoned request was dropped (or
    // never reached the handler: Node may discard a request whose connection closed unread).
    const liveIp = uniqueSubnet().host(6);
    const live = newNetns(liveIp);
    await cniAdd('web', live, liveIp);
    const aboutStale = (re: RegExp) => a.matching(re).filter((l) => l.includes(staleIp));
    assert.deepEqual(aboutStale(/pod added to the mesh/), [], agentLog());
    // Handled at all, it was handled as abandoned (dropped before, or undone during, the add).
    assert.ok(aboutStale(/CNI add event/).length <= aboutStale(/CNI add abandoned/).length, agentLog());
    assert.equal(hasRules(stale), false, `no rules in the abandoned netns\n${agentLog()}`);
    assert.equal(listening(stale, 15001), false, 'no proxy in the abandoned netns');
    assert.doesNotMatch(probeEntries(), new RegExp(staleIp.replaceAll('.', '\\.')), 'no probe entry');

    assert.equal(annotation('web'), 'enabled', agentLog());
    assert.equal(hasRules(live), true);
    await eventually('ztunnel listens in the live netns', () => listening(live, 15001), 30_000);
    assert.match(probeEntries(), new RegExp(liveIp.replaceAll('.', '\\.')));
    assert.equal(a.matching(/pod added to the mesh/).length, 1, agentLog());
    assert.equal(hasRules(stale), false);
    assert.equal(listening(stale, 15001), false);
  });
});
