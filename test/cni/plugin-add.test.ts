/**
 * ADD against the lab API server (pods and namespaces read with the plugin's kubeconfig) and a
 * real agent event server on a Unix socket: the bundle decides membership and reports to the agent.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { CniEventServer } from '../../src/agent/cni-event-server.js';
import type { CniAddEvent } from '../../src/cni/event.js';
import type { PodSource } from '../../src/cni/plugin/ambient.js';
import { KubeReader } from '../../src/cni/plugin/kube.js';
import { pluginLog } from '../../src/cni/plugin/log.js';
import { runPlugin } from '../../src/cni/plugin/run.js';
import type { ApiServer } from '../../src/lab/apiserver/index.js';
import { apiServerForPlugin, buildBundle, cniEnv, createObject, runCni } from './bundle.js';

const MODE = 'istio.io/dataplane-mode';
let bundle: { dir: string; plugin: string };
let api: ApiServer;
let runDir: string;
let agent: CniEventServer | undefined;
let events: CniAddEvent[];

const create = (path: string, obj: object) => createObject(api, path, obj);
const ns = (name: string, labels: Record<string, string> = {}) =>
  create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
const pod = (namespace: string, name: string, labels: Record<string, string> = {}, extra: object = {}) =>
  create(`/api/v1/namespaces/${namespace}/pods`, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels, ...extra },
    spec: { containers: [{ name: 'app', image: 'busybox' }] },
  });

before(async () => {
  bundle = buildBundle();
  runDir = join(bundle.dir, 'run');
  mkdirSync(runDir);
  api = await apiServerForPlugin(bundle.dir, runDir);
  await ns('mesh', { [MODE]: 'ambient' });
  await ns('plain');
  await pod('mesh', 'web-0');
  await pod('mesh', 'opt-out', { [MODE]: 'none' });
  await pod(
    'mesh',
    'injected',
    {},
    { annotations: { 'sidecar.istio.io/status': '{"containers":["istio-proxy"]}' } },
  );
  await pod('plain', 'solo', { [MODE]: 'ambient' });
  await pod('plain', 'other');
});
after(async () => {
  await api.close();
  rmSync(bundle.dir, { recursive: true, force: true });
});
afterEach(async () => {
  await agent?.close();
  agent = undefined;
});

async function startAgent(onAdd?: (e: CniAddEvent) => Promise<void>) {
  events = [];
  agent = await CniEventServer.listen({
    socketPath: join(runDir, 'pluginevent.sock'),
    onAdd:
      onAdd ??
      (async (e) => {
        events.push(e);
      }),
  });
}

const prev = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/cni-1' }],
  ips: [{ address: '10.30.0.7/24', gateway: '10.30.0.1', interface: 0 }],
};
const stdin = (extra: object = {}) =>
  JSON.stringify({
    cniVersion: '1.0.0',
    name: 'k8s-pod-network',
    type: 'ambit-cni',
    cni_agent_run_dir: runDir,
    prevResult: prev,
    ...extra,
  });
const add = (namespace: string, name: string, extra: object = {}) =>
  runCni(
    bundle.plugin,
    cniEnv('ADD', {
      CNI_NETNS: '/var/run/netns/cni-1',
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${name};K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u`,
    }),
    stdin(extra),
  );

describe('ADD with the lab API server and the agent event server', () => {
  it('a pod in an ambient namespace is POSTed to the agent with netns, name, namespace and IPs; prevResult passes through', async () => {
    await startAgent();
    const r = await add('mesh', 'web-0');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), prev);
    assert.deepEqual(events, [
      { netns: '/var/run/netns/cni-1', podName: 'web-0', podNamespace: 'mesh', ips: ['10.30.0.7'] },
    ]);
    process.stderr.write(
      `# ambit-cni ADD wall time (ambient pod, 2 API GETs + agent POST): ${r.ms.toFixed(0)} ms\n`,
    );
  });

  it("the body on the wire is istio-cni's JSON", async () => {
    const socketPath = join(runDir, 'pluginevent.sock');
    const bodies: string[] = [];
    const raw = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString('utf8');
      });
      req.on('end', () => {
        bodies.push(`${req.method} ${req.url} ${req.headers['content-type']} ${body}`);
        res.end();
      });
    });
    await new Promise<void>((resolve) => raw.listen(socketPath, resolve));
    try {
      const r = await add('plain', 'solo');
      assert.equal(r.code, 0, r.stdout);
    } finally {
      await new Promise((resolve) => raw.close(resolve));
    }
    assert.deepEqual(bodies, [
      'POST /cmdadd application/json {"Netns":"/var/run/netns/cni-1","PodName":"solo","PodNamespace":"plain","IPs":[{"Interface":0,"Address":{"IP":"10.30.0.7","Mask":"////AA=="},"Gateway":"10.30.0.1"}]}',
    ]);
  });

  for (const [namespace, name, why] of [
    ['mesh', 'opt-out', 'pod label none in an ambient namespace'],
    ['mesh', 'injected', 'sidecar-injected pod'],
    ['plain', 'other', 'no ambient label anywhere'],
  ] as const) {
    it(`${why}: no POST, pass-through`, async () => {
      await startAgent();
      const r = await add(namespace, name);
      assert.equal(r.code, 0, r.stdout);
      assert.deepEqual(JSON.parse(r.stdout), prev);
      assert.equal(events.length, 0);
    });
  }

  it('an excluded namespace is a no-op even for an ambient-labelled pod', async () => {
    await startAgent();
    const r = await add('mesh', 'web-0', { exclude_namespaces: ['mesh'] });
    assert.equal(r.code, 0);
    assert.equal(events.length, 0);
  });

  it('agent down -> code 11 naming the socket (fail closed)', async () => {
    const r = await add('mesh', 'web-0');
    assert.notEqual(r.code, 0);
    const body = JSON.parse(r.stdout);
    assert.equal(body.code, 11);
    assert.ok(body.msg.includes(join(runDir, 'pluginevent.sock')), body.msg);
  });

  it("agent answers 500 -> code 11 carrying the agent's reason", async () => {
    await startAgent(async () => {
      throw new Error('no ztunnel connected');
    });
    const r = await add('mesh', 'web-0');
    const body = JSON.parse(r.stdout);
    assert.equal(body.code, 11);
    assert.match(body.msg, /HTTP 500: no ztunnel connected/);
  });

  for (const [what, extra, msg] of [
    ['without prevResult', { prevResult: undefined }, /no prevResult/],
    ['with a prevResult that has no IPs', { prevResult: { ...prev, ips: [] } }, /prevResult has no IPs/],
  ] as const) {
    it(`an ambient ADD ${what} -> code 7 as JSON on stdout, non-zero exit, nothing sent to the agent`, async () => {
      await startAgent();
      const r = await add('mesh', 'web-0', extra);
      assert.notEqual(r.code, 0, r.stdout);
      const body = JSON.parse(r.stdout);
      assert.equal(body.code, 7);
      assert.equal(body.cniVersion, '1.0.0');
      assert.match(body.msg, msg);
      assert.match(body.msg, /mesh\/web-0/);
      assert.match(body.msg, /chained after the plugin that gives the pod its IPs/);
      assert.deepEqual(events, [], 'nothing sent to the agent');
    });
  }

  it("the agent's own pod passes without a kubeconfig", async () => {
    const r = await add('istio-system', 'ambit-cni-node-x7k2p', {
      cni_agent_run_dir: join(bundle.dir, 'empty'),
    });
    assert.equal(r.code, 0, r.stdout);
    assert.deepEqual(JSON.parse(r.stdout), prev);
  });

  it('no kubeconfig yet -> code 11 saying so', async () => {
    const r = await add('mesh', 'web-0', { cni_agent_run_dir: join(bundle.dir, 'empty') });
    const body = JSON.parse(r.stdout);
    assert.equal(body.code, 11);
    assert.match(body.msg, /ambit-cni-kubeconfig does not exist yet/);
  });

  it('unknown pod with detection retry off: treated as not ambient after the lookups fail', async () => {
    await startAgent();
    const r = await add('mesh', 'ghost');
    assert.equal(r.code, 0, r.stdout);
    assert.equal(events.length, 0);
    assert.match(r.stderr, /pod lookup failed, treating the pod as not ambient/);
  });
});

describe('ambient detection retries (in-process, real API server)', () => {
  /** The lab API server behind a source whose first `failures` calls fail like a flaky network. */
  function flaky(failures: number): PodSource & { calls: number } {
    const reader = new KubeReader({ server: api.url, token: api.token, caPem: api.caPem });
    const s = {
      calls: 0,
      getPod(namespace: string, name: string) {
        return ++s.calls <= failures
          ? Promise.reject(new Error('connection reset'))
          : reader.getPod(namespace, name);
      },
      getNamespace: (name: string) => reader.getNamespace(name),
    };
    return s;
  }
  const env = cniEnv('ADD', { CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=mesh;K8S_POD_NAME=web-0' });
  const quiet = pluginLog({ write: () => true });

  it('API flakes 3 times then answers: with retry on, the pod is ambient and reported', async () => {
    await startAgent();
    const source = flaky(3);
    const out = await runPlugin(env, stdin({ enable_ambient_detection_retry: true }), quiet, {
      podSource: source,
      retry: { attempts: 31, backoffMs: 5 },
    });
    assert.equal(out.exitCode, 0, out.stdout);
    assert.equal(source.calls, 4);
    assert.equal(events.length, 1);
  });

  it('every attempt fails with retry on -> code 11, nothing POSTed', async () => {
    await startAgent();
    const source = flaky(1000);
    const out = await runPlugin(env, stdin({ enable_ambient_detection_retry: true }), quiet, {
      podSource: source,
      retry: { attempts: 31, backoffMs: 1 },
    });
    assert.equal(out.exitCode, 1);
    assert.equal(JSON.parse(out.stdout).code, 11);
    assert.match(
      JSON.parse(out.stdout).msg,
      /cannot tell whether pod mesh\/web-0 is ambient: connection reset/,
    );
    assert.equal(source.calls, 31);
    assert.equal(events.length, 0);
  });
});
