import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeConfig, parseConfig } from '../../src/cni/plugin/config.js';
import { CniError } from '../../src/cni/plugin/errors.js';
import { DEFAULT_ENABLEMENT_SELECTORS } from '../../src/cni/selector.js';

const base = { cniVersion: '1.0.0', name: 'k8s-pod-network', type: 'ambit-cni' };
const cniCode = (fn: () => unknown, code: number, text: RegExp) =>
  assert.throws(
    fn,
    (err: unknown) => err instanceof CniError && err.cniCode === code && text.test(err.message),
  );

describe('plugin config', () => {
  it('bad JSON and non-objects are decode failures (code 6)', () => {
    cniCode(() => decodeConfig('{not json'), 6, /decode/);
    cniCode(() => decodeConfig(''), 6, /decode/);
    cniCode(() => decodeConfig('[1,2]'), 6, /not a JSON object/);
  });

  it('missing required fields are invalid config (code 7) naming the field', () => {
    for (const key of ['cniVersion', 'name', 'type'] as const) {
      const raw: Record<string, unknown> = { ...base };
      delete raw[key];
      if (key === 'cniVersion') cniCode(() => parseConfig(raw), 7, /'cniVersion'/);
      else cniCode(() => parseConfig(raw), 7, new RegExp(`'${key}'`));
    }
  });

  it('wrong types are code 7 naming the key', () => {
    cniCode(() => parseConfig({ ...base, ambient_enabled: 'yes' }), 7, /'ambient_enabled' must be a boolean/);
    cniCode(() => parseConfig({ ...base, exclude_namespaces: 'kube-system' }), 7, /'exclude_namespaces'/);
    cniCode(() => parseConfig({ ...base, prevResult: [1] }), 7, /'prevResult'/);
    cniCode(
      () =>
        parseConfig({
          ...base,
          enablement_selectors: [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'Near' }] } }],
        }),
      7,
      /operator/,
    );
    cniCode(
      () => parseConfig({ ...base, 'cni.dev/valid-attachments': [{ containerID: 1 }] }),
      7,
      /valid-attachments/,
    );
  });

  it('an unsupported cniVersion is code 1', () => {
    cniCode(() => parseConfig({ ...base, cniVersion: '0.2.0' }), 1, /0\.2\.0/);
  });

  it('defaults: ambit run dir, chart selectors, kube-system excluded, ambient on', () => {
    const c = parseConfig(base);
    assert.equal(c.agentRunDir, '/var/run/ambit');
    assert.deepEqual(c.enablementSelectors, DEFAULT_ENABLEMENT_SELECTORS);
    assert.deepEqual(c.excludeNamespaces, ['kube-system']);
    assert.equal(c.ambientEnabled, true);
    assert.equal(c.enableAmbientDetectionRetry, false);
  });

  it("Istio's keys are read", () => {
    const c = parseConfig({
      ...base,
      cni_agent_run_dir: '/tmp/run',
      exclude_namespaces: null,
      enablement_selectors: [],
      ambient_enabled: false,
      enable_ambient_detection_retry: true,
      pod_namespace: 'ambit-system',
      plugin_log_level: 'debug',
      prevResult: { cniVersion: '1.0.0', ips: [] },
    });
    assert.equal(c.agentRunDir, '/tmp/run');
    assert.deepEqual(c.excludeNamespaces, []);
    assert.deepEqual(c.enablementSelectors, []);
    assert.equal(c.ambientEnabled, false);
    assert.equal(c.enableAmbientDetectionRetry, true);
    assert.equal(c.podNamespace, 'ambit-system');
    assert.deepEqual(c.prevResult, { cniVersion: '1.0.0', ips: [] });
  });

  it('GC attachments under both spellings', () => {
    const a = [{ containerID: 'c1', ifname: 'eth0' }];
    assert.deepEqual(parseConfig({ ...base, 'cni.dev/valid-attachments': a }).validAttachments, a);
    assert.deepEqual(parseConfig({ ...base, 'cni.dev/attachments': a }).validAttachments, a);
  });
});
