import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  buildCniArgs,
  buildCniEnv,
  buildPluginConfig,
  type CniSandbox,
  parseCniErrorBody,
  pluginFailure,
  validateConfList,
} from '../../src/lab/cni-runtime/index.js';

const sandbox: CniSandbox = {
  containerId: 'abc123',
  netns: '/var/run/netns/ambit-l-pod-a_b',
  ifname: 'eth0',
  podNamespace: 'a',
  podName: 'b',
  podUid: 'uid-1',
};

describe('CNI_ARGS and environment', () => {
  test('CNI_ARGS has the keys containerd sends, in order', () => {
    assert.equal(
      buildCniArgs(sandbox),
      'IgnoreUnknown=1;K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=uid-1',
    );
    assert.match(
      buildCniArgs({ ...sandbox, infraContainerId: 'pause9' }),
      /K8S_POD_INFRA_CONTAINER_ID=pause9;/,
    );
  });

  test('a value with a separator is rejected instead of smuggling a key', () => {
    assert.throws(() => buildCniArgs({ ...sandbox, podName: 'x;K8S_POD_UID=evil' }), {
      code: 'CNI_INVALID_ARGS',
    });
    assert.throws(() => buildCniArgs({ ...sandbox, podUid: 'a=b' }), { code: 'CNI_INVALID_ARGS' });
  });

  test('the env carries the call and drops inherited CNI_* variables', () => {
    const env = buildCniEnv('DEL', sandbox, ['/opt/x', '/usr/lib/cni'], {
      PATH: '/bin',
      CNI_COMMAND: 'ADD',
      CNI_STALE: '1',
    });
    assert.deepEqual(env, {
      PATH: '/bin',
      CNI_COMMAND: 'DEL',
      CNI_PATH: '/opt/x:/usr/lib/cni',
      CNI_CONTAINERID: 'abc123',
      CNI_NETNS: sandbox.netns,
      CNI_IFNAME: 'eth0',
      CNI_ARGS: buildCniArgs(sandbox),
    });
  });
});

describe('per-plugin config', () => {
  const list = {
    cniVersion: '1.0.0',
    name: 'net',
    plugins: [
      { type: 'bridge', cniVersion: '0.3.1', name: 'wrong', custom: { deep: [1, 2] } },
      {
        type: 'portmap',
        capabilities: { portMappings: true, bandwidth: false },
        prevResult: { stale: true },
      },
    ],
  };
  const runtimeConfig = { portMappings: [{ hostPort: 80 }], bandwidth: { rate: 1 }, ips: ['x'] };

  test("first plugin: the list's cniVersion and name, unknown keys kept, no prevResult", () => {
    const conf = buildPluginConfig(list, list.plugins[0]!, undefined, runtimeConfig);
    assert.deepEqual(conf, { type: 'bridge', cniVersion: '1.0.0', name: 'net', custom: { deep: [1, 2] } });
  });

  test('later plugin: prevResult threaded, runtimeConfig only for enabled capabilities', () => {
    const prev = { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }] };
    const conf = buildPluginConfig(list, list.plugins[1]!, prev, runtimeConfig);
    assert.deepEqual(conf['prevResult'], prev);
    assert.deepEqual(conf['runtimeConfig'], { portMappings: [{ hostPort: 80 }] });
  });

  test('a conflist is validated before anything runs', () => {
    assert.throws(() => validateConfList({ cniVersion: '1.0.0', name: 'n', plugins: [] }), {
      code: 'CNI_INVALID_CONFLIST',
      message: /'plugins' must be a non-empty array/,
    });
    assert.throws(
      () => validateConfList({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: '../../bin/sh' }] }),
      {
        code: 'CNI_INVALID_CONFLIST',
        message: /plugins\[0\]\.type/,
      },
    );
    assert.throws(() => validateConfList({ name: 'n', plugins: [{ type: 'x' }] }), /cniVersion/);
    assert.throws(() => validateConfList([]), /not a JSON object/);
  });
});

describe('plugin error parsing', () => {
  test('the spec error object is recognised, anything else is not', () => {
    assert.deepEqual(parseCniErrorBody('{"cniVersion":"1.0.0","code":4,"msg":"no CNI_NETNS","details":""}'), {
      cniVersion: '1.0.0',
      code: 4,
      msg: 'no CNI_NETNS',
      details: undefined,
    });
    assert.equal(parseCniErrorBody('{"code":"4","msg":"x"}'), undefined);
    assert.equal(parseCniErrorBody('null'), undefined);
    assert.equal(parseCniErrorBody('panic'), undefined);
  });

  test('stdout JSON wins, stderr JSON is the fallback, plain text is kept', () => {
    const fromStdout = pluginFailure('p', 'ADD', 1, '{"code":11,"msg":"busy","details":"retry"}', 'log line');
    assert.equal(fromStdout.cniCode, 11);
    assert.equal(fromStdout.details, 'retry');
    assert.match(fromStdout.message, /'p' ADD failed \(CNI code 11: try again later\): busy; details: retry/);
    const fromStderr = pluginFailure('p', 'DEL', 1, '', '{"code":150,"msg":"own error"}');
    assert.equal(fromStderr.cniCode, 150);
    assert.match(fromStderr.message, /\(CNI code 150\): own error$/);
    const plain = pluginFailure('p', 'CHECK', 2, '', 'line1\nline2\n');
    assert.equal(plain.cniCode, undefined);
    assert.equal(plain.msg, 'exited with status 2: line1 | line2');
    assert.equal(pluginFailure('p', 'ADD', null, '', '').msg, 'was killed');
  });
});
