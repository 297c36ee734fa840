import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  compareSpiffeIds,
  formatSpiffeId,
  isSpiffeId,
  namespaceOf,
  parseSpiffeId,
  parseTrustDomain,
  sameSpiffeId,
  serviceAccountOf,
  trustDomainOf,
} from '../../src/identity/spiffe.js';

describe('SPIFFE ids', () => {
  const valid: Array<[string, string, string, string]> = [
    ['spiffe://cluster.local/ns/default/sa/default', 'cluster.local', 'default', 'default'],
    ['spiffe://example.org/ns/ambient-demo/sa/sleep', 'example.org', 'ambient-demo', 'sleep'],
    ['spiffe://td_1-x/ns/My.Ns/sa/Sa_2', 'td_1-x', 'My.Ns', 'Sa_2'],
  ];
  for (const [input, td, ns, sa] of valid) {
    it(`parses ${input}`, () => {
      const id = parseSpiffeId(input);
      assert.equal(id, input);
      assert.equal(trustDomainOf(id), td);
      assert.equal(namespaceOf(id), ns);
      assert.equal(serviceAccountOf(id), sa);
      assert.equal(formatSpiffeId({ trustDomain: td, namespace: ns, serviceAccount: sa }), id);
      assert.equal(isSpiffeId(input), true);
    });
  }

  const invalid = [
    '',
    'cluster.local/ns/a/sa/b',
    'http://cluster.local/ns/a/sa/b',
    'SPIFFE://cluster.local/ns/a/sa/b',
    'spiffe://',
    'spiffe://cluster.local',
    'spiffe://cluster.local/',
    'spiffe:///ns/a/sa/b',
    'spiffe://Cluster.Local/ns/a/sa/b',
    'spiffe://cluster.local:443/ns/a/sa/b',
    'spiffe://user@cluster.local/ns/a/sa/b',
    'spiffe://cluster.local/ns/a/sa',
    'spiffe://cluster.local/ns/a/sa/',
    'spiffe://cluster.local/ns//sa/b',
    'spiffe://cluster.local/ns/a/sa/b/',
    'spiffe://cluster.local/ns/a/sa/b/extra',
    'spiffe://cluster.local/namespace/a/sa/b',
    'spiffe://cluster.local/ns/a/serviceaccount/b',
    'spiffe://cluster.local/sa/b/ns/a',
    'spiffe://cluster.local/ns/../sa/b',
    'spiffe://cluster.local/ns/a/sa/b?x=1',
    'spiffe://cluster.local/ns/a/sa/b#frag',
    'spiffe://cluster.local/ns/a b/sa/b',
    'spiffe://cluster.local/ns/a%2f/sa/b',
    `spiffe://cluster.local/ns/${'a'.repeat(3000)}/sa/b`,
  ];
  for (const input of invalid) {
    it(`rejects ${JSON.stringify(input.slice(0, 60))} with ERR_SPIFFE_ID`, () => {
      assert.throws(() => parseSpiffeId(input), { code: 'ERR_SPIFFE_ID' });
      assert.equal(isSpiffeId(input), false);
    });
  }

  it('an empty service account formats as default, as in Istio', () => {
    assert.equal(
      formatSpiffeId({ trustDomain: 'cluster.local', namespace: 'ns1', serviceAccount: '' }),
      'spiffe://cluster.local/ns/ns1/sa/default',
    );
  });

  it('formatting checks its parts', () => {
    assert.throws(() => formatSpiffeId({ trustDomain: 'a/b', namespace: 'n', serviceAccount: 's' }), {
      code: 'ERR_SPIFFE_ID',
    });
    assert.throws(() => formatSpiffeId({ trustDomain: 'td', namespace: 'n/x', serviceAccount: 's' }), {
      code: 'ERR_SPIFFE_ID',
    });
    assert.throws(() => parseTrustDomain('UPPER'), { code: 'ERR_SPIFFE_ID' });
  });

  it('compares by trust domain, then namespace, then service account', () => {
    const a = parseSpiffeId('spiffe://a.local/ns/z/sa/z');
    const b = parseSpiffeId('spiffe://b.local/ns/a/sa/a');
    const c = parseSpiffeId('spiffe://b.local/ns/a/sa/b');
    assert.deepEqual([c, b, a].sort(compareSpiffeIds), [a, b, c]);
    assert.equal(compareSpiffeIds(b, parseSpiffeId('spiffe://b.local/ns/a/sa/a')), 0);
    assert.equal(sameSpiffeId(b, parseSpiffeId('spiffe://b.local/ns/a/sa/a')), true);
    assert.equal(sameSpiffeId(b, c), false);
  });

  it('the error message names the expected form', () => {
    assert.throws(
      () => parseSpiffeId('spiffe://cluster.local/foo'),
      /spiffe:\/\/<trust domain>\/ns\/<namespace>\/sa/,
    );
  });
});
