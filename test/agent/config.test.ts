import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAgentConfig } from '../../src/agent/config.js';
import { DEFAULT_ENABLEMENT_SELECTORS } from '../../src/cni/selector.js';

describe('agent config', () => {
  it('defaults follow istio-cni and the chart', () => {
    const c = parseAgentConfig([], { NODE_NAME: 'n1' });
    assert.equal(c.nodeName, 'n1');
    assert.equal(c.eventSocket, '/var/run/ambit/pluginevent.sock');
    assert.equal(c.zdsSocket, '/var/run/ztunnel/ztunnel.sock');
    assert.deepEqual(c.excludeNamespaces, ['kube-system']);
    assert.deepEqual(c.selectors, DEFAULT_ENABLEMENT_SELECTORS);
    assert.deepEqual(c.healthAddr, { host: '::', port: 8000 });
    assert.equal(c.backend, 'iptables');
    assert.equal(c.inbound, 'tproxy');
    assert.equal(c.hostNetns, null);
  });

  it('flags win over environment, environment over defaults', () => {
    const env = {
      NODE_NAME: 'env-node',
      EXCLUDE_NAMESPACES: 'a, b,',
      CNI_AGENT_RUN_DIR: '/run/x',
      AMBIENT_ENABLEMENT_SELECTOR: '[{podSelector: {matchLabels: {x: y}}}]',
    };
    const c = parseAgentConfig(['--node-name', 'flag-node', '--redirect-backend', 'nftables'], env);
    assert.equal(c.nodeName, 'flag-node');
    assert.deepEqual(c.excludeNamespaces, ['a', 'b']);
    assert.equal(c.eventSocket, '/run/x/pluginevent.sock');
    assert.deepEqual(c.selectors, [{ podSelector: { matchLabels: { x: 'y' } } }]);
    assert.equal(c.backend, 'nftables');
  });

  it('bad input is an error naming its source', () => {
    assert.throws(() => parseAgentConfig([], {}), { code: 'ERR_CONFIG', message: /NODE_NAME/ });
    assert.throws(() => parseAgentConfig(['--bogus'], { NODE_NAME: 'n' }), { code: 'ERR_CONFIG' });
    assert.throws(() => parseAgentConfig([], { NODE_NAME: 'n', REDIRECT_BACKEND: 'pf' }), {
      code: 'ERR_CONFIG',
      message: /REDIRECT_BACKEND/,
    });
    assert.throws(() => parseAgentConfig(['--health-addr', 'nowhere'], { NODE_NAME: 'n' }), {
      code: 'ERR_CONFIG',
    });
    assert.throws(() => parseAgentConfig([], { NODE_NAME: 'n', AMBIENT_ENABLEMENT_SELECTOR: '{' }), {
      code: 'ERR_CONFIG',
    });
    assert.throws(() => parseAgentConfig([], { NODE_NAME: 'n', AMBIENT_ENABLEMENT_SELECTOR: '[{bad: 1}]' }), {
      code: 'SELECTOR_INVALID',
    });
  });
});
