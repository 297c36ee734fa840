import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_ENABLEMENT_SELECTORS,
  isAmbientPod,
  matchesNamespace,
  matchesSelector,
  type PodLike,
} from '../../src/cni/selector.js';

const MODE = 'istio.io/dataplane-mode';
const pod = (labels: Record<string, string> = {}, extra: Partial<PodLike> = {}): PodLike => ({
  metadata: { labels, ...extra.metadata },
  spec: { ...extra.spec },
});

describe('ambient selection with the chart defaults (§1.4)', () => {
  const cases: [string, PodLike, Record<string, string> | undefined, boolean][] = [
    ['pod label ambient, plain namespace', pod({ [MODE]: 'ambient' }), {}, true],
    ['pod label ambient, namespace none', pod({ [MODE]: 'ambient' }), { [MODE]: 'none' }, true],
    ['no labels anywhere', pod(), {}, false],
    ['namespace ambient, pod unlabelled', pod(), { [MODE]: 'ambient' }, true],
    ['namespace ambient, pod none', pod({ [MODE]: 'none' }), { [MODE]: 'ambient' }, false],
    ['namespace ambient, pod other value', pod({ [MODE]: 'sidecar' }), { [MODE]: 'ambient' }, true],
    ['namespace label other value', pod(), { [MODE]: 'Ambient' }, false],
    [
      'hostNetwork pod, pod label ambient',
      pod({ [MODE]: 'ambient' }, { spec: { hostNetwork: true } }),
      {},
      false,
    ],
    [
      'hostNetwork pod, namespace ambient',
      pod({}, { spec: { hostNetwork: true } }),
      { [MODE]: 'ambient' },
      false,
    ],
    [
      'sidecar-injected pod in ambient namespace',
      pod({}, { metadata: { annotations: { 'sidecar.istio.io/status': '{}' } } }),
      { [MODE]: 'ambient' },
      false,
    ],
    ['namespace unknown (no labels)', pod(), undefined, false],
  ];
  for (const [name, p, ns, want] of cases) {
    it(`${name} -> ${want ? 'ambient' : 'not ambient'}`, () => {
      assert.equal(isAmbientPod(p, ns, DEFAULT_ENABLEMENT_SELECTORS), want);
    });
  }

  it('an empty selector list matches nothing; an empty entry matches everything', () => {
    assert.equal(isAmbientPod(pod({ [MODE]: 'ambient' }), {}, []), false);
    assert.equal(isAmbientPod(pod(), {}, [{}]), true);
  });

  it('matchesNamespace looks at non-empty namespace selectors only', () => {
    assert.equal(matchesNamespace({ [MODE]: 'ambient' }, DEFAULT_ENABLEMENT_SELECTORS), true);
    assert.equal(matchesNamespace({}, DEFAULT_ENABLEMENT_SELECTORS), false);
    assert.equal(matchesNamespace({}, [{ podSelector: { matchLabels: { a: 'b' } } }]), false);
  });
});

describe('label selector operators', () => {
  const table: [string, Parameters<typeof matchesSelector>[0], Record<string, string>, boolean][] = [
    ['In hit', { matchExpressions: [{ key: 'a', operator: 'In', values: ['x', 'y'] }] }, { a: 'y' }, true],
    ['In absent key', { matchExpressions: [{ key: 'a', operator: 'In', values: ['x'] }] }, {}, false],
    ['NotIn absent key', { matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['x'] }] }, {}, true],
    [
      'NotIn listed',
      { matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['x'] }] },
      { a: 'x' },
      false,
    ],
    ['Exists', { matchExpressions: [{ key: 'a', operator: 'Exists' }] }, { a: '' }, true],
    ['DoesNotExist', { matchExpressions: [{ key: 'a', operator: 'DoesNotExist' }] }, { a: '1' }, false],
    [
      'matchLabels and expressions ANDed',
      { matchLabels: { b: '1' }, matchExpressions: [{ key: 'a', operator: 'Exists' }] },
      { a: '1' },
      false,
    ],
  ];
  for (const [name, sel, labels, want] of table) {
    it(name, () => assert.equal(matchesSelector(sel, labels), want));
  }
});
