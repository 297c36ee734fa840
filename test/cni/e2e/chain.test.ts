/**
 * The bundled ambit-cni chained after the reference plugins (bridge + host-local, loopback) by the
 * lab's CNI runtime, against a real pod netns, the lab API server and a real agent event server.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CniEventServer } from '../../../src/agent/cni-event-server.js';
import type { CniAddEvent } from '../../../src/cni/event.js';
import type { ApiServer } from '../../../src/lab/apiserver/index.js';
import { CniPluginError, CniRuntime, type NetworkConfigList } from '../../../src/lab/cni-runtime/index.js';
import { apiServerForPlugin, buildBundle, createObject } from '../../cni/bundle.js';
import { run, TestNetns, uniqueSubnet } from '../../helpers/netns.js';

const MODE = 'istio.io/dataplane-mode';
let bundle: { dir: string; plugin: string };
let api: ApiServer;
let runDir: string;
const bridge = `ambit${randomBytes(3).toString('hex')}br`;
const subnet = uniqueSubnet();
let conflist: NetworkConfigList;

const create = (path: string, obj: object) => createObject(api, path, obj);
const podObj = (name: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name },
  spec: { containers: [{ name: 'app', image: 'busybox' }] },
});

before(async () => {
  bundle = buildBundle();
  runDir = join(bundle.dir, 'run');
  mkdirSync(runDir);
  api = await apiServerForPlugin(bundle.dir, runDir);
  await create('/api/v1/namespaces', {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'mesh', labels: { [MODE]: 'ambient' } },
  });
  await create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'plain' } });
  await create('/api/v1/namespaces/mesh/pods', podObj('web-0'));
  await create('/api/v1/namespaces/mesh/pods', podObj('web-1'));
  await create('/api/v1/namespaces/plain/pods', podObj('solo'));
  conflist = {
    cniVersion: '1.0.0',
    name: 'ambit-t-chain',
    plugins: [
      {
        type: 'bridge',
        bridge,
        isGateway: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: subnet.cidr }]], dataDir: join(bundle.dir, 'ipam') },
      },
      { type: 'loopback' },
      { type: 'ambit-cni', cni_agent_run_dir: runDir },
    ],
  };
});
after(async () => {
  await api?.close();
  try {
    run('ip', ['link', 'del', bridge]);
  } catch {}
  rmSync(bundle.dir, { recursive: true, force: true });
});

describe('ambit-cni chained after bridge + host-local + loopback', () => {
  const runtime = () => new CniRuntime({ pluginDirs: [bundle.dir, '/usr/lib/cni'] });
  const sandbox = (ns: TestNetns, podNamespace: string, podName: string) => ({
    containerId: `ctr-${randomBytes(4).toString('hex')}`,
    netns: ns.path,
    ifname: 'eth0',
    podNamespace,
    podName,
    podUid: randomBytes(8).toString('hex'),
  });

  it('an ambient pod: the agent hears about it after the pod has its address; result is the primary CNI result', async () => {
    const pod = new TestNetns();
    const seen: { event: CniAddEvent; addr: string }[] = [];
    const agent = await CniEventServer.listen({
      socketPath: join(runDir, 'pluginevent.sock'),
      // By the time the plugin calls, the reference plugins must have configured eth0 in the pod netns.
      onAdd: async (event) => {
        seen.push({ event, addr: pod.exec('ip', ['-4', '-o', 'addr', 'show', 'dev', 'eth0']) });
      },
    });
    const sb = sandbox(pod, 'mesh', 'web-0');
    try {
      const result = await runtime().add(conflist, sb);
      const ip = result.ips?.[0]?.address.split('/')[0] ?? '';
      assert.ok(ip.startsWith(`${subnet.prefix}.`), JSON.stringify(result));
      assert.ok(result.interfaces?.some((i) => i.name === bridge));
      assert.ok(result.interfaces?.some((i) => i.name === 'eth0' && i.sandbox === pod.path));
      assert.equal(seen.length, 1);
      assert.deepEqual(seen[0]!.event, {
        netns: pod.path,
        podName: 'web-0',
        podNamespace: 'mesh',
        ips: [ip],
      });
      assert.match(seen[0]!.addr, new RegExp(`inet ${ip.replace(/\./g, '\\.')}/24`));
      await runtime().del(conflist, sb, result);
      await runtime().del(conflist, sb, result);
    } finally {
      await agent.close();
      pod.remove();
    }
  });

  it('a non-ambient pod goes through the same chain without any event', async () => {
    const pod = new TestNetns();
    const events: CniAddEvent[] = [];
    const agent = await CniEventServer.listen({
      socketPath: join(runDir, 'pluginevent.sock'),
      onAdd: async (e) => {
        events.push(e);
      },
    });
    const sb = sandbox(pod, 'plain', 'solo');
    try {
      const result = await runtime().add(conflist, sb);
      assert.ok(result.ips?.length);
      assert.equal(events.length, 0);
      await runtime().del(conflist, sb, result);
    } finally {
      await agent.close();
      pod.remove();
    }
  });

  it('with no agent listening the sandbox fails with CNI code 11 from ambit-cni (fail closed)', async () => {
    const pod = new TestNetns();
    const sb = sandbox(pod, 'mesh', 'web-1');
    try {
      await assert.rejects(runtime().add(conflist, sb), (err: unknown) => {
        assert.ok(err instanceof CniPluginError);
        assert.equal(err.plugin, 'ambit-cni');
        assert.equal(err.cniCode, 11);
        assert.match(err.msg, /pluginevent\.sock/);
        return true;
      });
    } finally {
      // The runtime follows a failed ADD with DEL, which must succeed for every plugin.
      await runtime().del(conflist, sb);
      pod.remove();
    }
  });
});
