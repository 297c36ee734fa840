import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Authorization, emptyMatch, type Match } from '../../src/discovery/types.js';
import { parseSpiffeId } from '../../src/identity/spiffe.js';
import { authorize, type ConnectionAttributes } from '../../src/policy/authorize.js';
import { setLogSink } from '../../src/runtime/log.js';

const SLEEP = parseSpiffeId('spiffe://cluster.local/ns/default/sa/sleep');
const OTHER = parseSpiffeId('spiffe://cluster.local/ns/prod/sa/web');

function m(fields: Partial<Match>): Match {
  return { ...emptyMatch(), ...fields };
}

function policy(
  action: 'Allow' | 'Deny',
  matches: Match[],
  extra: Partial<Authorization> = {},
): Authorization {
  return {
    name: `${action.toLowerCase()}-p`,
    namespace: 'default',
    scope: 'Namespace',
    action,
    dryRun: false,
    rules: [[matches]],
    ...extra,
  };
}

const conn = (o: Partial<ConnectionAttributes> = {}): ConnectionAttributes => ({
  srcIp: '10.1.0.5',
  srcIdentity: SLEEP,
  dstIp: '10.2.0.7',
  dstPort: 8000,
  ...o,
});

const cases: [string, Authorization[], ConnectionAttributes, boolean | string][] = [
  ['no policies allow', [], conn(), true],
  [
    'exact principal (spiffe:// stripped) allows',
    [policy('Allow', [m({ principals: [{ exact: 'cluster.local/ns/default/sa/sleep' }] })])],
    conn(),
    true,
  ],
  [
    'principal written with spiffe:// allows too',
    [policy('Allow', [m({ principals: [{ exact: SLEEP }] })])],
    conn(),
    true,
  ],
  [
    'other principal: allow policies exist, none allowed',
    [policy('Allow', [m({ principals: [{ exact: 'cluster.local/ns/prod/sa/web' }] })])],
    conn(),
    'allow policies exist, but none allowed',
  ],
  [
    'principal never matches without identity',
    [policy('Allow', [m({ principals: [{ presence: true }] })])],
    conn({ srcIdentity: undefined }),
    'allow policies exist, but none allowed',
  ],
  [
    'principal prefix',
    [policy('Allow', [m({ principals: [{ prefix: 'cluster.local/ns/default/' }] })])],
    conn(),
    true,
  ],
  [
    'principal suffix',
    [policy('Allow', [m({ principals: [{ suffix: '/sa/web' }] })])],
    conn({ srcIdentity: OTHER }),
    true,
  ],
  [
    'deny wins over allow',
    [
      policy('Allow', [m({ destinationPorts: [8000] })]),
      policy('Deny', [m({ namespaces: [{ exact: 'default' }] })]),
    ],
    conn(),
    'explicitly denied by: default/deny-p',
  ],
  [
    'dry-run deny only logs',
    [policy('Deny', [m({ destinationPorts: [8000] })], { dryRun: true })],
    conn(),
    true,
  ],
  [
    'dry-run allow does not count as an allow policy',
    [policy('Allow', [m({ destinationPorts: [1] })], { dryRun: true })],
    conn(),
    true,
  ],
  [
    'namespace match',
    [policy('Allow', [m({ namespaces: [{ exact: 'prod' }] })])],
    conn({ srcIdentity: OTHER }),
    true,
  ],
  [
    'namespace of no identity is ""',
    [policy('Deny', [m({ notNamespaces: [{ exact: 'default' }] })])],
    conn({ srcIdentity: undefined }),
    'explicitly denied by: default/deny-p',
  ],
  [
    'service account match',
    [policy('Allow', [m({ serviceAccounts: [{ namespace: 'default', serviceAccount: 'sleep' }] })])],
    conn(),
    true,
  ],
  [
    'service account needs identity',
    [policy('Allow', [m({ serviceAccounts: [{ namespace: 'default', serviceAccount: 'sleep' }] })])],
    conn({ srcIdentity: undefined }),
    'allow policies exist, but none allowed',
  ],
  ['source CIDR', [policy('Allow', [m({ sourceIps: [{ address: '10.1.0.0', length: 16 }] })])], conn(), true],
  [
    'source CIDR miss',
    [policy('Allow', [m({ sourceIps: [{ address: '10.9.0.0', length: 16 }] })])],
    conn(),
    'allow policies exist, but none allowed',
  ],
  [
    'v4-mapped source matches a v4 CIDR',
    [policy('Deny', [m({ sourceIps: [{ address: '10.1.0.5', length: 32 }] })])],
    conn({ srcIp: '::ffff:10.1.0.5' }),
    'explicitly denied by: default/deny-p',
  ],
  [
    'IPv6 destination CIDR',
    [policy('Allow', [m({ destinationIps: [{ address: 'fd00::', length: 64 }] })])],
    conn({ dstIp: 'fd00::7' }),
    true,
  ],
  [
    'not destination IP',
    [policy('Deny', [m({ notDestinationIps: [{ address: '10.2.0.7', length: 32 }] })])],
    conn(),
    true,
  ],
  [
    'destination port',
    [policy('Deny', [m({ destinationPorts: [8000] })])],
    conn(),
    'explicitly denied by: default/deny-p',
  ],
  ['not destination port', [policy('Allow', [m({ notDestinationPorts: [9999] })])], conn(), true],
  [
    'all populated fields AND inside one match',
    [policy('Allow', [m({ destinationPorts: [8000], namespaces: [{ exact: 'prod' }] })])],
    conn(),
    'allow policies exist, but none allowed',
  ],
  [
    'matches in a clause OR',
    [policy('Allow', [m({ destinationPorts: [1] }), m({ destinationPorts: [8000] })])],
    conn(),
    true,
  ],
  ['empty matches are skipped; an all-empty clause is true', [policy('Allow', [m({})])], conn(), true],
  [
    'a policy without rules never matches',
    [{ ...policy('Allow', []), rules: [] }],
    conn(),
    'allow policies exist, but none allowed',
  ],
];

for (const [name, policies, c, expected] of cases) {
  test(`authorize: ${name}`, () => {
    const verdict = authorize(policies, c);
    if (expected === true) assert.deepEqual(verdict, { allowed: true });
    else assert.deepEqual(verdict, { allowed: false, reason: expected });
  });
}

test('authorize: clauses within a rule AND', () => {
  const p: Authorization = {
    ...policy('Allow', []),
    rules: [[[m({ destinationPorts: [8000] })], [m({ namespaces: [{ exact: 'prod' }] })]]],
  };
  assert.equal(authorize([p], conn()).allowed, false);
  assert.equal(authorize([p], conn({ srcIdentity: OTHER })).allowed, true);
});

test('authorize: a matched dry-run policy logs at debug, or at info under AUTHZ_POLICY_INFO_LOGGING=true', () => {
  const lines: string[] = [];
  setLogSink({ write: (l: string) => void lines.push(l) });
  const saved = process.env['AUTHZ_POLICY_INFO_LOGGING'];
  try {
    const dryRun = [policy('Deny', [m({ destinationPorts: [8000] })], { dryRun: true })];
    delete process.env['AUTHZ_POLICY_INFO_LOGGING'];
    authorize(dryRun, conn());
    assert.equal(lines.length, 0, 'debug is below the default level');
    // Set after the module loaded: the switch is read when a dry-run policy matches.
    process.env['AUTHZ_POLICY_INFO_LOGGING'] = 'true';
    authorize(dryRun, conn());
    authorize(dryRun, conn({ dstPort: 9000 }));
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, / INFO ztunnel::rbac: dry-run deny policy matched policy=default\/deny-p /);
  } finally {
    if (saved === undefined) delete process.env['AUTHZ_POLICY_INFO_LOGGING'];
    else process.env['AUTHZ_POLICY_INFO_LOGGING'] = saved;
    setLogSink(process.stdout);
  }
});
