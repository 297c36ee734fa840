/**
 * AuthorizationPolicy objects to ztunnel's L4 Authorization, as istiod converts them for ambient:
 * scope from the selector and the root namespace, one rule per AuthorizationPolicy rule with its
 * `to`, `from` and `when` as clauses, HTTP attributes handled the ztunnel way (a DENY keeps its L4
 * part, an ALLOW rule is dropped) with a warning, and what ztunnel cannot enforce skipped.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type AuthorizationPolicyObject,
  convertAuthorizationPolicy,
  selectsWorkload,
} from '../../src/controlplane/xds/authorization-policy.js';
import type { Authorization } from '../../src/discovery/types.js';
import { parseSpiffeId } from '../../src/identity/spiffe.js';
import { authorize } from '../../src/policy/authorize.js';

const ROOT = 'istio-system';
const ap = (namespace: string, spec: unknown, name = 'p'): AuthorizationPolicyObject => ({
  metadata: { name, namespace },
  spec,
});

function converted(o: AuthorizationPolicyObject) {
  const r = convertAuthorizationPolicy(o, ROOT);
  assert.ok(r.ok, r.ok ? '' : r.reason);
  return r.policy;
}

const SLEEP = parseSpiffeId('spiffe://cluster.local/ns/mesh/sa/sleep');
const OTHER = parseSpiffeId('spiffe://cluster.local/ns/other/sa/default');
const conn = (srcIdentity: typeof SLEEP | undefined, dstPort = 8000) => ({
  srcIp: '10.1.0.5',
  ...(srcIdentity ? { srcIdentity } : {}),
  dstIp: '10.2.0.7',
  dstPort,
});
const allowed = (p: Authorization, c: ReturnType<typeof conn>) => authorize([p], c).allowed;

describe('convertAuthorizationPolicy', () => {
  it('scope: no selector = Namespace, in the root namespace = Global, a selector = WorkloadSelector', () => {
    assert.equal(converted(ap('mesh', {})).authorization.scope, 'Namespace');
    const global = converted(ap(ROOT, {})).authorization;
    assert.equal(global.scope, 'Global');
    assert.equal(global.namespace, ROOT, 'keyed as istiod sends it: <root namespace>/<name>');
    const sel = converted(ap('mesh', { selector: { matchLabels: { app: 'httpbin' } } }));
    assert.equal(sel.authorization.scope, 'WorkloadSelector');
    assert.deepEqual(sel.selector, { app: 'httpbin' });
    assert.equal(
      converted(ap(ROOT, { selector: { matchLabels: { a: 'b' } } })).authorization.scope,
      'WorkloadSelector',
    );
  });

  it('action: ALLOW by default, DENY; AUDIT, CUSTOM and targetRefs are not for ztunnel', () => {
    assert.equal(converted(ap('mesh', {})).authorization.action, 'Allow');
    assert.equal(converted(ap('mesh', { action: 'DENY', rules: [{}] })).authorization.action, 'Deny');
    for (const action of ['AUDIT', 'CUSTOM']) {
      const r = convertAuthorizationPolicy(ap('mesh', { action, rules: [{}] }), ROOT);
      assert.deepEqual(r, { ok: false, reason: `ztunnel does not support the ${action} action` });
    }
    const waypoint = convertAuthorizationPolicy(
      ap('mesh', { targetRefs: [{ kind: 'Service', group: '', name: 'httpbin' }] }),
      ROOT,
    );
    assert.equal(waypoint.ok, false);
    assert.equal(convertAuthorizationPolicy({ metadata: { name: 'x' }, spec: {} }, ROOT).ok, false);
  });

  it('ALLOW by principal: only that identity passes; no identity never matches', () => {
    const p = converted(
      ap('mesh', { rules: [{ from: [{ source: { principals: ['cluster.local/ns/mesh/sa/sleep'] } }] }] }),
    ).authorization;
    assert.equal(allowed(p, conn(SLEEP)), true);
    assert.equal(allowed(p, conn(OTHER)), false);
    assert.equal(allowed(p, conn(undefined)), false);
  });

  it('DENY by namespace, wildcards as Istio writes them', () => {
    const p = converted(
      ap('mesh', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['oth*'] } }] }] }),
    ).authorization;
    assert.deepEqual(p.rules[0]?.[0]?.[0]?.namespaces, [{ prefix: 'oth' }]);
    assert.equal(allowed(p, conn(OTHER)), false);
    assert.equal(allowed(p, conn(SLEEP)), true);
    const any = converted(ap('mesh', { rules: [{ from: [{ source: { principals: ['*'] } }] }] }));
    assert.deepEqual(any.authorization.rules[0]?.[0]?.[0]?.principals, [{ presence: true }]);
    const suffix = converted(ap('mesh', { rules: [{ from: [{ source: { principals: ['*/sa/sleep'] } }] }] }));
    assert.deepEqual(suffix.authorization.rules[0]?.[0]?.[0]?.principals, [{ suffix: '/sa/sleep' }]);
  });

  it('ports: to.operation.ports and notPorts; a port that is not a number is left out', () => {
    const p = converted(
      ap('mesh', { action: 'DENY', rules: [{ to: [{ operation: { ports: ['8000', 'http', '70000'] } }] }] }),
    ).authorization;
    assert.deepEqual(p.rules[0]?.[0]?.[0]?.destinationPorts, [8000]);
    assert.equal(allowed(p, conn(SLEEP, 8000)), false);
    assert.equal(allowed(p, conn(SLEEP, 9000)), true);
    const not = converted(
      ap('mesh', { rules: [{ to: [{ operation: { notPorts: ['9999'] } }] }] }),
    ).authorization;
    assert.equal(allowed(not, conn(SLEEP, 8000)), true);
    assert.equal(allowed(not, conn(SLEEP, 9999)), false);
  });

  it('a rule ANDs to, from and when; entries of one list OR', () => {
    const p = converted(
      ap('mesh', {
        rules: [
          {
            from: [{ source: { namespaces: ['mesh'] } }, { source: { principals: ['x/ns/y/sa/z'] } }],
            to: [{ operation: { ports: ['8000'] } }],
            when: [{ key: 'destination.port', notValues: ['8001'] }],
          },
        ],
      }),
    ).authorization;
    assert.equal(p.rules.length, 1);
    assert.equal(p.rules[0]!.length, 3, 'clauses: to, from, when');
    assert.equal(allowed(p, conn(SLEEP, 8000)), true);
    assert.equal(allowed(p, conn(OTHER, 8000)), false);
    assert.equal(allowed(p, conn(SLEEP, 8001)), false);
  });

  it('serviceAccounts: ns/sa, or a bare name in the policy namespace; ipBlocks as CIDRs', () => {
    const p = converted(
      ap('mesh', {
        rules: [
          {
            from: [
              {
                source: {
                  serviceAccounts: ['sleep', 'other/default'],
                  ipBlocks: ['10.1.0.0/16', 'bogus', '10.3.0.1'],
                },
              },
            ],
          },
        ],
      }),
    ).authorization;
    const m = p.rules[0]![0]![0]!;
    assert.deepEqual(m.serviceAccounts, [
      { namespace: 'mesh', serviceAccount: 'sleep' },
      { namespace: 'other', serviceAccount: 'default' },
    ]);
    assert.deepEqual(m.sourceIps, [
      { address: '10.1.0.0', length: 16 },
      { address: '10.3.0.1', length: 32 },
    ]);
  });

  it('ALLOW with HTTP attributes: those rules are dropped (allow less), with a warning', () => {
    const pol = converted(
      ap('mesh', {
        rules: [
          { to: [{ operation: { methods: ['GET'], paths: ['/get'] } }] },
          { from: [{ source: { namespaces: ['other'] } }] },
        ],
      }),
    );
    assert.equal(pol.authorization.rules.length, 1, 'only the L4 rule is left');
    assert.equal(allowed(pol.authorization, conn(SLEEP)), false, 'the HTTP rule no longer allows mesh');
    assert.equal(allowed(pol.authorization, conn(OTHER)), true);
    assert.match(pol.warning ?? '', /ztunnel does not support HTTP attributes \(found: methods, paths\)/);
    assert.match(pol.warning ?? '', /rules matching HTTP attributes are omitted/);
    // Every rule HTTP: an ALLOW policy that allows nothing.
    const only = converted(ap('mesh', { rules: [{ when: [{ key: 'request.headers[x]', values: ['1'] }] }] }));
    assert.equal(only.authorization.rules.length, 0);
    assert.equal(allowed(only.authorization, conn(SLEEP)), false);
  });

  it('DENY with HTTP attributes: the L4 part is enforced (deny more), with a warning', () => {
    const pol = converted(
      ap('mesh', {
        action: 'DENY',
        rules: [
          {
            from: [{ source: { namespaces: ['other'], requestPrincipals: ['*'] } }],
            to: [{ operation: { methods: ['POST'], paths: ['/admin'] } }],
          },
        ],
      }),
    );
    assert.equal(allowed(pol.authorization, conn(OTHER)), false, 'every connection from other is denied');
    assert.equal(allowed(pol.authorization, conn(SLEEP)), true);
    assert.match(pol.warning ?? '', /found: methods, paths, requestPrincipals/);
    assert.match(pol.warning ?? '', /DENY policy with HTTP attributes is enforced without the HTTP rules/);
    const paths = converted(
      ap('mesh', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/x'] } }] }] }),
    );
    assert.equal(allowed(paths.authorization, conn(SLEEP)), false, 'a path-only DENY denies everything');
  });

  it('an ALLOW without rules allows nothing; an empty rule allows everything', () => {
    assert.equal(allowed(converted(ap('mesh', {})).authorization, conn(SLEEP)), false);
    assert.equal(allowed(converted(ap('mesh', { rules: [{}] })).authorization, conn(SLEEP)), true);
  });

  it('bad shapes from the API server lose the bad part, never throw', () => {
    for (const spec of [null, 'x', [], { rules: 'x' }, { rules: [null, 3, { from: 'x', to: [null] }] }]) {
      const r = convertAuthorizationPolicy(ap('mesh', spec), ROOT);
      assert.equal(r.ok, true);
    }
  });
});

describe('selectsWorkload', () => {
  const pod = (namespace: string, labels: Record<string, string>) => ({ namespace, labels });
  it('same namespace and every label; the root namespace selects in every namespace', () => {
    assert.equal(selectsWorkload('mesh', { app: 'a' }, ROOT, pod('mesh', { app: 'a', v: '1' })), true);
    assert.equal(selectsWorkload('mesh', { app: 'a' }, ROOT, pod('mesh', { app: 'b' })), false);
    assert.equal(selectsWorkload('mesh', { app: 'a' }, ROOT, pod('other', { app: 'a' })), false);
    assert.equal(selectsWorkload(ROOT, { app: 'a' }, ROOT, pod('other', { app: 'a' })), true);
    assert.equal(selectsWorkload('mesh', {}, ROOT, pod('mesh', {})), true);
  });
});
