/** CNI conformance of the real bundle, executed as a process exactly as a runtime runs it. */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CniEventServer } from '../../src/agent/cni-event-server.js';
import { buildBundle, cniEnv, runCni } from './bundle.js';

let bundle: { dir: string; plugin: string };
before(() => {
  bundle = buildBundle();
});
after(() => rmSync(bundle.dir, { recursive: true, force: true }));

/** A prevResult in the shape each spec version defines (0.3.x/0.4.0 carry `ips[].version`). */
function prevResult(cniVersion: string): Record<string, unknown> {
  const old = cniVersion.startsWith('0.');
  return {
    cniVersion,
    interfaces: [
      { name: 'cni0', mac: '26:11:6e:4d:7d:3a' },
      { name: 'eth0', mac: 'ae:3c:01:52:2f:8a', sandbox: '/var/run/netns/ambit-x' },
    ],
    ips: [
      { ...(old ? { version: '4' } : {}), address: '10.22.0.5/16', gateway: '10.22.0.1', interface: 1 },
      { ...(old ? { version: '6' } : {}), address: 'fd00:22::5/64', gateway: 'fd00:22::1', interface: 1 },
    ],
    routes: [{ dst: '0.0.0.0/0', gw: '10.22.0.1' }],
    dns: { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] },
  };
}

const VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
const conf = (cniVersion: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion, name: 'k8s-pod-network', type: 'ambit-cni', ...extra });

describe('ambit-cni bundle: CNI conformance', () => {
  it('VERSION lists 0.3.0 ... 1.1.0', async () => {
    const r = await runCni(bundle.plugin, { CNI_COMMAND: 'VERSION' }, conf('1.1.0'));
    assert.equal(r.code, 0);
    assert.deepEqual(JSON.parse(r.stdout), { cniVersion: '1.1.0', supportedVersions: VERSIONS });
  });

  for (const v of VERSIONS) {
    it(`ADD ${v}: stdout is exactly prevResult (not a Kubernetes pod: no agent involved)`, async () => {
      const prev = prevResult(v);
      const r = await runCni(bundle.plugin, cniEnv('ADD'), conf(v, { prevResult: prev }));
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), prev);
    });
  }

  it('ADD in an excluded namespace passes prevResult through without any kubeconfig or agent', async () => {
    const prev = prevResult('1.0.0');
    const r = await runCni(
      bundle.plugin,
      cniEnv('ADD', { CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-1' }),
      conf('1.0.0', { prevResult: prev, cni_agent_run_dir: join(bundle.dir, 'nothing-here') }),
    );
    assert.equal(r.code, 0, r.stdout);
    assert.deepEqual(JSON.parse(r.stdout), prev);
  });

  it('ADD without prevResult prints a result with just the version', async () => {
    const r = await runCni(bundle.plugin, cniEnv('ADD'), conf('1.0.0'));
    assert.equal(r.code, 0);
    assert.deepEqual(JSON.parse(r.stdout), { cniVersion: '1.0.0' });
  });

  it('repeated DEL succeeds with no output, also without CNI_NETNS and prevResult; CHECK succeeds', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await runCni(
        bundle.plugin,
        cniEnv('DEL', { CNI_NETNS: i === 2 ? undefined : '/gone' }),
        conf('1.0.0'),
      );
      assert.equal(r.code, 0, r.stdout);
      assert.equal(r.stdout, '');
    }
    const check = await runCni(
      bundle.plugin,
      cniEnv('CHECK'),
      conf('1.0.0', { prevResult: prevResult('1.0.0') }),
    );
    assert.equal(check.code, 0);
    assert.equal(check.stdout, '');
  });

  it('GC accepts both attachment keys and prints nothing', async () => {
    for (const key of ['cni.dev/valid-attachments', 'cni.dev/attachments']) {
      const r = await runCni(
        bundle.plugin,
        cniEnv('GC'),
        conf('1.1.0', { [key]: [{ containerID: 'c', ifname: 'eth0' }] }),
      );
      assert.equal(r.code, 0, r.stdout);
      assert.equal(r.stdout, '');
    }
  });

  const errorCases: [string, Record<string, string | undefined>, string, number, RegExp][] = [
    ['malformed stdin', cniEnv('ADD'), '{"cniVersion": "1.0.0", ', 6, /decode/],
    ['stdin not an object', cniEnv('ADD'), '"text"', 6, /not a JSON object/],
    ['missing CNI_NETNS', cniEnv('ADD', { CNI_NETNS: undefined }), conf('1.0.0'), 4, /CNI_NETNS/],
    ['missing CNI_COMMAND', cniEnv('ADD', { CNI_COMMAND: undefined }), conf('1.0.0'), 4, /CNI_COMMAND/],
    ['unknown CNI_ARGS key', cniEnv('ADD', { CNI_ARGS: 'FOO=1' }), conf('1.0.0'), 4, /CNI_ARGS.*FOO/],
    ['missing name', cniEnv('ADD'), JSON.stringify({ cniVersion: '1.0.0', type: 'ambit-cni' }), 7, /'name'/],
    ['unsupported version', cniEnv('ADD'), conf('0.1.0'), 1, /0\.1\.0/],
    ['STATUS below 1.1.0', cniEnv('STATUS'), conf('1.0.0'), 1, /STATUS needs cniVersion 1\.1\.0/],
  ];
  for (const [name, env, stdin, code, msg] of errorCases) {
    it(`${name} -> error code ${code} as JSON on stdout, non-zero exit`, async () => {
      const r = await runCni(bundle.plugin, env, stdin);
      assert.notEqual(r.code, 0);
      const body = JSON.parse(r.stdout);
      assert.equal(body.code, code);
      assert.match(body.msg, msg);
      assert.equal(typeof body.cniVersion, 'string');
      // The error is also logged, on stderr only, as a JSON line.
      assert.equal(JSON.parse(r.stderr.trim().split('\n').pop()!).level, 'error');
    });
  }

  it('stdout holds only the result even at debug level; logs are JSON lines on stderr', async () => {
    const r = await runCni(
      bundle.plugin,
      cniEnv('ADD', { CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=x' }),
      conf('1.0.0', { plugin_log_level: 'debug', prevResult: prevResult('1.0.0') }),
    );
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim().split('\n').length, 1);
    assert.deepEqual(JSON.parse(r.stdout), prevResult('1.0.0'));
    const lines = r.stderr.trim().split('\n');
    assert.ok(lines.length >= 2, r.stderr);
    for (const line of lines) assert.ok(['debug', 'info'].includes(JSON.parse(line).level), line);
  });

  it('STATUS: 50 naming the socket when the agent is down, 50 with the reason when not ready, 0 when ready', async () => {
    const runDir = join(bundle.dir, 'run-status');
    mkdirSync(runDir, { recursive: true });
    const socket = join(runDir, 'pluginevent.sock');
    const stdin = conf('1.1.0', { cni_agent_run_dir: runDir });
    const down = await runCni(bundle.plugin, cniEnv('STATUS'), stdin);
    assert.notEqual(down.code, 0);
    assert.equal(JSON.parse(down.stdout).code, 50);
    assert.ok(JSON.parse(down.stdout).msg.includes(socket));

    let why: string | undefined = 'waiting for ztunnel';
    const server = await CniEventServer.listen({
      socketPath: socket,
      onAdd: async () => {},
      notReady: () => why,
    });
    try {
      const notReady = await runCni(bundle.plugin, cniEnv('STATUS'), stdin);
      assert.equal(JSON.parse(notReady.stdout).code, 50);
      assert.match(JSON.parse(notReady.stdout).msg, /waiting for ztunnel/);
      why = undefined;
      const ready = await runCni(bundle.plugin, cniEnv('STATUS'), stdin);
      assert.equal(ready.code, 0, ready.stdout);
      assert.equal(ready.stdout, '');
    } finally {
      await server.close();
    }
  });
});
