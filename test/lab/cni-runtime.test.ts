import assert from 'node:assert/strict';
import { after, beforeEach, describe, test } from 'node:test';
import {
  CniDelError,
  CniPluginError,
  CniRuntime,
  type CniSandbox,
  type NetworkConfigList,
} from '../../src/lab/cni-runtime/index.js';
import { FakePlugins } from './fake-plugins.js';

const sandbox: CniSandbox = {
  containerId: 'c0ffee',
  netns: '/var/run/netns/ambit-x-pod-ns_p',
  ifname: 'eth0',
  podNamespace: 'ambient-demo',
  podName: 'sleep',
  podUid: '1e054806-e667-4109-a5af-08b3e6ba0c42',
};

describe('CNI runtime with executable fake plugins', () => {
  const fakes = new FakePlugins();
  const bin = fakes.add('alpha');
  fakes.add('beta');
  fakes.add('gamma');
  const extra = fakes.add('alpha', 'extra');
  fakes.add('delta', 'extra');
  after(() => fakes.remove());

  let n = 0;
  let log = '';
  beforeEach(() => {
    log = `${fakes.dir}/calls-${++n}.jsonl`;
  });
  const calls = () => fakes.calls(log);
  const list = (
    modes: Record<string, string> = {},
    types = ['alpha', 'beta', 'gamma'],
  ): NetworkConfigList => ({
    cniVersion: '1.0.0',
    name: 'ambit-test',
    plugins: types.map((type) => ({ type, log, modes, keep: `${type}-own-key` })),
  });

  test('ADD runs the chain in order with CNI_* env and threads prevResult', async () => {
    const runtime = new CniRuntime({ pluginDirs: [bin] });
    const result = await runtime.add(list(), sandbox);
    assert.deepEqual(
      result.interfaces?.map((i) => i.name),
      ['alpha', 'beta', 'gamma'],
    );
    const seen = calls();
    assert.deepEqual(
      seen.map((c) => c.type),
      ['alpha', 'beta', 'gamma'],
    );
    for (const c of seen) {
      assert.equal(c.env['CNI_COMMAND'], 'ADD');
      assert.equal(c.env['CNI_CONTAINERID'], 'c0ffee');
      assert.equal(c.env['CNI_NETNS'], sandbox.netns);
      assert.equal(c.env['CNI_IFNAME'], 'eth0');
      assert.equal(c.env['CNI_PATH'], bin);
      assert.equal(
        c.env['CNI_ARGS'],
        'IgnoreUnknown=1;K8S_POD_NAMESPACE=ambient-demo;K8S_POD_NAME=sleep;' +
          'K8S_POD_INFRA_CONTAINER_ID=c0ffee;K8S_POD_UID=1e054806-e667-4109-a5af-08b3e6ba0c42',
      );
      assert.equal(c.conf['cniVersion'], '1.0.0');
      assert.equal(c.conf['name'], 'ambit-test');
      assert.equal(c.conf['keep'], `${c.type}-own-key`);
    }
    assert.equal('prevResult' in seen[0]!.conf, false);
    assert.deepEqual((seen[1]!.conf['prevResult'] as { interfaces: unknown }).interfaces, [
      { name: 'alpha' },
    ]);
    assert.deepEqual((seen[2]!.conf['prevResult'] as { interfaces: unknown }).interfaces, [
      { name: 'alpha' },
      { name: 'beta' },
    ]);
  });

  test('DEL runs in reverse with the final ADD result, keeps going past a failure and reports it', async () => {
    const runtime = new CniRuntime({ pluginDirs: [bin] });
    const final = { cniVersion: '1.0.0', interfaces: [{ name: 'from-add' }] };
    const err = await runtime.del(list({ 'beta:DEL': 'fail' }), sandbox, final).then(
      () => assert.fail('DEL should report the failing plugin'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof CniDelError);
    assert.equal(err.code, 'CNI_DEL_FAILED');
    assert.equal(err.errors.length, 1);
    const only = err.errors[0];
    assert.ok(only instanceof CniPluginError);
    assert.equal(only.plugin, 'beta');
    assert.equal(only.command, 'DEL');
    const seen = calls();
    assert.deepEqual(
      seen.map((c) => c.type),
      ['gamma', 'beta', 'alpha'],
    );
    for (const c of seen) {
      assert.equal(c.env['CNI_COMMAND'], 'DEL');
      assert.deepEqual(c.conf['prevResult'], final);
    }
  });

  test("a plugin's error JSON becomes a typed error and stops the ADD chain", async () => {
    const runtime = new CniRuntime({ pluginDirs: [bin] });
    await assert.rejects(runtime.add(list({ 'beta:ADD': 'fail' }), sandbox), (e: unknown) => {
      assert.ok(e instanceof CniPluginError);
      assert.equal(e.code, 'CNI_PLUGIN_FAILED');
      assert.equal(e.plugin, 'beta');
      assert.equal(e.command, 'ADD');
      assert.equal(e.cniCode, 7);
      assert.equal(e.msg, 'bad range');
      assert.equal(e.details, 'subnet 10.0.0.0/33');
      assert.equal(e.exitCode, 1);
      assert.match(e.message, /CNI code 7: invalid network config/);
      return true;
    });
    assert.deepEqual(
      calls().map((c) => c.type),
      ['alpha', 'beta'],
    );
  });

  test('a plugin that fails without error JSON is reported with its stderr and exit status', async () => {
    const runtime = new CniRuntime({ pluginDirs: [bin] });
    await assert.rejects(runtime.add(list({ 'alpha:ADD': 'crash' }), sandbox), (e: unknown) => {
      assert.ok(e instanceof CniPluginError);
      assert.equal(e.cniCode, undefined);
      assert.equal(e.exitCode, 3);
      assert.match(e.message, /exited with status 3: panic: boom/);
      return true;
    });
  });

  test('invalid JSON printed on success is an error, not a result', async () => {
    const runtime = new CniRuntime({ pluginDirs: [bin] });
    await assert.rejects(runtime.add(list({ 'gamma:ADD': 'badjson' }), sandbox), /gamma.*invalid JSON/);
  });

  test('a plugin that hangs is killed after the timeout', async () => {
    const runtime = new CniRuntime({ pluginDirs: [bin], timeoutMs: 300 });
    await assert.rejects(runtime.add(list({ 'alpha:ADD': 'hang' }), sandbox), /timed out after 300 ms/);
  });

  test('CHECK runs in order with prevResult; disableCheck skips it', async () => {
    const runtime = new CniRuntime({ pluginDirs: [bin] });
    const final = { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }] };
    await runtime.check(list(), sandbox, final);
    const seen = calls();
    assert.deepEqual(
      seen.map((c) => [c.type, c.env['CNI_COMMAND']]),
      [
        ['alpha', 'CHECK'],
        ['beta', 'CHECK'],
        ['gamma', 'CHECK'],
      ],
    );
    assert.ok(seen.every((c) => JSON.stringify(c.conf['prevResult']) === JSON.stringify(final)));
    await runtime.check({ ...list(), disableCheck: true }, sandbox, final);
    assert.equal(calls().length, 3);
  });

  test('plugins are looked up in the dirs in order; a missing one names the Debian package', async () => {
    const runtime = new CniRuntime({ pluginDirs: [extra, bin] });
    const result = await runtime.add(list({}, ['delta', 'alpha', 'beta']), sandbox);
    assert.deepEqual(
      result.interfaces?.map((i) => i.name),
      ['delta', 'alpha', 'beta'],
    );
    assert.equal(calls()[0]!.env['CNI_PATH'], `${extra}:${bin}`);
    await assert.rejects(new CniRuntime({ pluginDirs: [bin] }).add(list({}, ['alpha', 'nosuch']), sandbox), {
      code: 'CNI_PLUGIN_NOT_FOUND',
      message: /'nosuch' not found .*containernetworking-plugins/,
    });
  });

  test('VERSION reports what the plugin supports', async () => {
    const info = await new CniRuntime({ pluginDirs: [bin] }).version('alpha');
    assert.deepEqual(info.supportedVersions, ['0.4.0', '1.0.0']);
  });
});
