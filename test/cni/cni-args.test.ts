import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCniArgs } from '../../src/cni/cni-args.js';
import { readCniEnv } from '../../src/cni/plugin/env.js';
import { CniError } from '../../src/cni/plugin/errors.js';

describe('CNI_ARGS (LoadArgs semantics)', () => {
  it('reads the K8S_POD_* keys containerd sends', () => {
    const args = parseCniArgs(
      'IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1',
    );
    assert.deepEqual(args, {
      K8S_POD_NAME: 'web-0',
      K8S_POD_NAMESPACE: 'ns1',
      K8S_POD_INFRA_CONTAINER_ID: 'abc',
      K8S_POD_UID: 'u-1',
    });
  });

  it('empty or absent CNI_ARGS yields empty fields', () => {
    assert.equal(parseCniArgs(undefined).K8S_POD_NAME, '');
    assert.equal(parseCniArgs('').K8S_POD_NAMESPACE, '');
  });

  it('unknown keys are an error unless IgnoreUnknown is true (any position, any case)', () => {
    assert.throws(() => parseCniArgs('K8S_POD_NAME=a;FOO=bar'), { code: 'CNI_ARGS_INVALID', message: /FOO/ });
    assert.throws(() => parseCniArgs('IgnoreUnknown=0;FOO=bar'), { code: 'CNI_ARGS_INVALID' });
    assert.equal(parseCniArgs('FOO=bar;K8S_POD_NAME=a;IgnoreUnknown=TRUE').K8S_POD_NAME, 'a');
  });

  it('malformed pairs and non-boolean IgnoreUnknown are errors naming the pair', () => {
    assert.throws(() => parseCniArgs('K8S_POD_NAME'), { message: /invalid pair 'K8S_POD_NAME'/ });
    assert.throws(() => parseCniArgs('K8S_POD_NAME=a=b'), { message: /invalid pair/ });
    assert.throws(() => parseCniArgs('IgnoreUnknown=yes'), { message: /boolean/ });
  });
});

describe('CNI environment', () => {
  const full = {
    CNI_COMMAND: 'ADD',
    CNI_CONTAINERID: 'c1',
    CNI_NETNS: '/var/run/netns/x',
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/opt/cni/bin',
    CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=p',
  };
  const code4 = (env: NodeJS.ProcessEnv, text: RegExp) =>
    assert.throws(
      () => readCniEnv(env),
      (err: unknown) => err instanceof CniError && err.cniCode === 4 && text.test(err.message),
    );

  it('a complete ADD environment parses', () => {
    const env = readCniEnv(full);
    assert.equal(env.command, 'ADD');
    assert.equal(env.netns, '/var/run/netns/x');
    assert.equal(env.args.K8S_POD_NAME, 'p');
  });

  it('missing variables give code 4 naming each of them', () => {
    code4({}, /CNI_COMMAND/);
    code4({ ...full, CNI_NETNS: '' }, /\[CNI_NETNS\]/);
    code4({ CNI_COMMAND: 'ADD' }, /CNI_CONTAINERID CNI_NETNS CNI_IFNAME CNI_PATH/);
    code4({ ...full, CNI_COMMAND: 'FROB' }, /unknown CNI_COMMAND 'FROB'/);
    code4({ ...full, CNI_ARGS: 'BOGUS=1' }, /CNI_ARGS.*BOGUS/);
  });

  it('DEL does not need CNI_NETNS; VERSION needs nothing else', () => {
    assert.equal(readCniEnv({ ...full, CNI_COMMAND: 'DEL', CNI_NETNS: undefined }).command, 'DEL');
    assert.equal(readCniEnv({ CNI_COMMAND: 'VERSION' }).command, 'VERSION');
  });
});
