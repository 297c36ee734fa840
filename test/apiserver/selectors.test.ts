import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  fieldValue,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
} from '../../src/lab/apiserver/selectors.js';

const labels = { app: 'web', tier: 'front', 'istio.io/dataplane-mode': 'ambient', version: '3' };

describe('label selectors', () => {
  const cases: [string, boolean][] = [
    ['', true],
    ['app=web', true],
    ['app==web', true],
    ['app=db', false],
    ['app!=db', true],
    ['app!=web', false],
    ['missing!=x', true],
    ['app=web,tier=front', true],
    ['app=web,tier=back', false],
    ['istio.io/dataplane-mode=ambient', true],
    ['app in (web,db)', true],
    ['app in (db, cache)', false],
    ['app notin (db,cache)', true],
    ['app notin (web)', false],
    ['missing notin (x)', true],
    ['missing in (x)', false],
    ['app', true],
    ['missing', false],
    ['!missing', true],
    ['!app', false],
    [' app = web , !missing , tier in ( front ) ', true],
    ['version>2', true],
    ['version<3', false],
    ['app>1', false],
    ['istio.io/dataplane-mode in (ambient),app', true],
  ];
  for (const [selector, expected] of cases) {
    test(`"${selector}" ${expected ? 'matches' : 'does not match'}`, () => {
      assert.equal(matchesLabels(parseLabelSelector(selector), labels), expected);
    });
  }

  test('parsed form of a set-based selector', () => {
    assert.deepEqual(parseLabelSelector('a in (x, y),!b,c!=d'), [
      { op: 'in', key: 'a', values: ['x', 'y'] },
      { op: '!exists', key: 'b' },
      { op: '!=', key: 'c', value: 'd' },
    ]);
  });

  test('no labels at all: only negative requirements hold', () => {
    assert.equal(matchesLabels(parseLabelSelector('!a,b!=c,d notin (e)'), undefined), true);
    assert.equal(matchesLabels(parseLabelSelector('a'), undefined), false);
  });

  for (const bad of ['app in (web', 'app)', 'a b', '=x', 'app=we b', 'bad key=x', 'version>two', ',']) {
    test(`"${bad}" is rejected with SELECTOR_INVALID`, () => {
      assert.throws(() => parseLabelSelector(bad), { code: 'SELECTOR_INVALID' });
    });
  }
});

describe('field selectors', () => {
  const pod = {
    metadata: { name: 'p1', namespace: 'ns1' },
    spec: { nodeName: 'node-a', hostNetwork: false },
    status: { phase: 'Running' },
  };

  test('equality, inequality and conjunction', () => {
    assert.equal(matchesFields(parseFieldSelector('spec.nodeName=node-a'), pod), true);
    assert.equal(matchesFields(parseFieldSelector('spec.nodeName==node-b'), pod), false);
    assert.equal(
      matchesFields(parseFieldSelector('status.phase!=Succeeded,status.phase!=Failed'), pod),
      true,
    );
    assert.equal(matchesFields(parseFieldSelector('metadata.name=p1,metadata.namespace=ns2'), pod), false);
  });

  test('a missing field is the empty string; booleans print as true/false', () => {
    assert.equal(fieldValue(pod, 'status.podIP'), '');
    assert.equal(matchesFields(parseFieldSelector('status.podIP='), pod), true);
    assert.equal(matchesFields(parseFieldSelector('spec.hostNetwork=false'), pod), true);
  });

  test('backslash escapes commas and equals signs in values', () => {
    assert.deepEqual(parseFieldSelector('metadata.name=a\\,b\\=c'), [
      { op: '=', key: 'metadata.name', value: 'a,b=c' },
    ]);
  });

  test('text without an operator is rejected', () => {
    assert.throws(() => parseFieldSelector('spec.nodeName'), { code: 'SELECTOR_INVALID' });
  });
});
