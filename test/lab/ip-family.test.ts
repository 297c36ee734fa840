/**
 * The lab's IPv6 and dual-stack plan (issue 16): IPv6 CIDR arithmetic, the node addresses and pod
 * blocks of each family, host-local's one range per family, and bad ranges refused before anything
 * is made. The IPv4 plan of a lab without --ip-family is unchanged (topology-plan.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatCidr, hostAddress, overlaps, parseCidr, subnet } from '../../src/lab/cidr.js';
import { nodeConflist } from '../../src/lab/conflist.js';
import { nodeIps, nodeNetworks, nodePodCidrs } from '../../src/lab/ip-family.js';
import { planNodes } from '../../src/lab/lab.js';
import { renderTopology } from '../../src/lab/render.js';

describe('IPv6 CIDR arithmetic', () => {
  test('parse, format (compressed), host and subnet', () => {
    const c = parseCidr('fd00:10:244::/56', 'IPv6 CIDR', 6);
    assert.equal(formatCidr(c), 'fd00:10:244::/56');
    assert.equal(formatCidr(subnet(c, 64, 1)), 'fd00:10:244:1::/64');
    assert.equal(formatCidr(subnet(c, 64, 255)), 'fd00:10:244:ff::/64');
    assert.equal(hostAddress(subnet(c, 64, 2), 1), 'fd00:10:244:2::1');
    assert.equal(formatCidr(parseCidr('FD00:0:0:0:0:0:0:0/64', 'IPv6 CIDR', 6)), 'fd00::/64');
    assert.equal(overlaps(c, parseCidr('fd00:10:244:7::/64', 'IPv6 CIDR', 6)), true);
    assert.equal(overlaps(c, parseCidr('fd00:10:240::/64', 'IPv6 CIDR', 6)), false);
  });

  test('bad IPv6 CIDRs fail with LAB_BAD_CIDR or LAB_SUBNET_TOO_SMALL and say why', () => {
    assert.throws(() => parseCidr('fd00:10:244::1/56', 'IPv6 CIDR', 6), {
      code: 'LAB_BAD_CIDR',
      message: /did you mean fd00:10:244::\/56/,
    });
    assert.throws(() => parseCidr('10.0.0.0/8', 'IPv6 CIDR', 6), {
      code: 'LAB_BAD_CIDR',
      message: /not IPv6/,
    });
    assert.throws(() => parseCidr('fd00::/129', 'IPv6 CIDR', 6), {
      code: 'LAB_BAD_CIDR',
      message: /between 8 and 120/,
    });
    assert.throws(() => parseCidr('fd00:::1/64', 'IPv6 CIDR', 6), {
      code: 'LAB_BAD_CIDR',
      message: /not an IPv6 address/,
    });
    assert.throws(() => subnet(parseCidr('fd00::/62', 'IPv6 CIDR', 6), 64, 4), {
      code: 'LAB_SUBNET_TOO_SMALL',
    });
  });
});

describe('lab plan by IP family', () => {
  test('ipv6: nodes on fd00:10:240::/64, node nK owns fd00:10:244:K::/64; the primary fields are IPv6', () => {
    const state = planNodes('plan', { name: 'plan', nodes: 2, ipFamily: 'ipv6' });
    assert.equal(state.ipFamily, 'ipv6');
    assert.deepEqual(
      [state.nodeCidr, state.podCidr, state.nodeMask],
      ['fd00:10:240::/64', 'fd00:10:244::/56', 64],
    );
    assert.deepEqual(
      state.nodes.map((n) => [n.name, n.ip, n.podCidr, n.podGateway]),
      [
        ['n1', 'fd00:10:240::1', 'fd00:10:244:1::/64', 'fd00:10:244:1::1'],
        ['n2', 'fd00:10:240::2', 'fd00:10:244:2::/64', 'fd00:10:244:2::1'],
      ],
    );
    assert.deepEqual(nodeIps(state.nodes[0]!), ['fd00:10:240::1']);
    const list = nodeConflist(state, state.nodes[1]!);
    assert.deepEqual(list.plugins[0]!['ipam'], {
      type: 'host-local',
      ranges: [[{ subnet: 'fd00:10:244:2::/64', gateway: 'fd00:10:244:2::1' }]],
      routes: [{ dst: '::/0' }],
      dataDir: '/var/run/ambit/lab/plan/ipam/n2',
    });
  });

  test('the uplink primaries (ipvlan, macvlan) plan IPv4 labs only: another family is refused', () => {
    for (const primaryCni of ['ipvlan', 'macvlan'] as const) {
      for (const ipFamily of ['ipv6', 'dual'] as const) {
        assert.throws(
          () => planNodes('plan', { name: 'plan', nodes: 2, ipFamily, primaryCni }),
          (e: Error & { code?: string }) =>
            e.code === 'LAB_BAD_IP_FAMILY' &&
            e.message.includes(`--primary-cni ${primaryCni} runs IPv4 labs only`),
        );
      }
      assert.equal(planNodes('plan', { name: 'plan', nodes: 2, primaryCni }).primaryCni, primaryCni);
    }
    const ptp = planNodes('plan', { name: 'plan', nodes: 2, ipFamily: 'dual', primaryCni: 'ptp' });
    const ipam = nodeConflist(ptp, ptp.nodes[1]!).plugins[0]!;
    assert.equal(ipam['type'], 'ptp');
    assert.deepEqual((ipam['ipam'] as Record<string, unknown>)['routes'], [
      { dst: '0.0.0.0/0' },
      { dst: '::/0' },
    ]);
  });

  test('dual: IPv4 first (the primary fields), then IPv6; host-local gets one range and one default route per family', () => {
    const state = planNodes('plan', { name: 'plan', nodes: 2, ipFamily: 'dual' });
    assert.equal(state.ipFamily, 'dual');
    assert.deepEqual([state.nodeCidr, state.podCidr], ['10.240.0.0/24', '10.244.0.0/16']);
    const n2 = state.nodes[1]!;
    assert.deepEqual([n2.ip, n2.podCidr, n2.podGateway], ['10.240.0.2', '10.244.2.0/24', '10.244.2.1']);
    assert.deepEqual(nodeNetworks(n2, state.nodeCidr), [
      { ip: '10.240.0.2', nodePrefix: 24, podCidr: '10.244.2.0/24', podGateway: '10.244.2.1' },
      { ip: 'fd00:10:240::2', nodePrefix: 64, podCidr: 'fd00:10:244:2::/64', podGateway: 'fd00:10:244:2::1' },
    ]);
    assert.deepEqual(nodeIps(n2), ['10.240.0.2', 'fd00:10:240::2']);
    assert.deepEqual(
      nodePodCidrs(n2).map((n) => n.podCidr),
      ['10.244.2.0/24', 'fd00:10:244:2::/64'],
    );
    const ipam = nodeConflist(state, n2).plugins[0]!['ipam'] as Record<string, unknown>;
    assert.deepEqual(ipam['ranges'], [
      [{ subnet: '10.244.2.0/24', gateway: '10.244.2.1' }],
      [{ subnet: 'fd00:10:244:2::/64', gateway: 'fd00:10:244:2::1' }],
    ]);
    assert.deepEqual(ipam['routes'], [{ dst: '0.0.0.0/0' }, { dst: '::/0' }]);
    const shown = renderTopology(state, new Set());
    assert.match(shown, /\(IP family dual\)/);
    assert.match(shown, /n2 +10\.240\.0\.2,fd00:10:240::2 +10\.244\.2\.0\/24,fd00:10:244:2::\/64 /);
  });

  test('ipv4 (the default) has no networks list: its state is what it was before IPv6', () => {
    const state = planNodes('plan', { name: 'plan', nodes: 1 });
    assert.equal(state.ipFamily, undefined);
    assert.equal(state.nodes[0]!.networks, undefined);
    assert.deepEqual(nodeNetworks(state.nodes[0]!, state.nodeCidr), [
      { ip: '10.240.0.1', nodePrefix: 24, podCidr: '10.244.1.0/24', podGateway: '10.244.1.1' },
    ]);
  });

  test('custom IPv6 ranges; an unknown family, overlapping or too small IPv6 ranges are refused', () => {
    const custom = planNodes('p', {
      name: 'p',
      nodes: 3,
      ipFamily: 'ipv6',
      nodeCidr6: 'fd42::/112',
      podCidr6: 'fd43:0:0:ff00::/62',
    });
    assert.deepEqual(
      custom.nodes.map((n) => [n.ip, n.podCidr]),
      [
        ['fd42::1', 'fd43:0:0:ff01::/64'],
        ['fd42::2', 'fd43:0:0:ff02::/64'],
        ['fd42::3', 'fd43:0:0:ff03::/64'],
      ],
    );
    const bad = (o: object) => () => planNodes('p', { name: 'p', nodes: 1, ipFamily: 'ipv6', ...o });
    assert.throws(bad({ nodes: 4, podCidr6: 'fd43::/62' }), { code: 'LAB_SUBNET_TOO_SMALL' });
    assert.throws(bad({ nodeCidr6: 'fd00:10:244:1::/64' }), { code: 'LAB_BAD_CIDR', message: /overlaps/ });
    assert.throws(bad({ podCidr6: 'fd00:10:244::/64' }), {
      code: 'LAB_BAD_CIDR',
      message: /between 32 and 63/,
    });
    assert.throws(bad({ podCidr6: '10.244.0.0/16' }), { code: 'LAB_BAD_CIDR', message: /not IPv6/ });
    assert.throws(() => planNodes('p', { name: 'p', nodes: 1, ipFamily: 'ipv5' as never }), {
      code: 'LAB_BAD_IP_FAMILY',
      message: /one of ipv4, ipv6, dual \(got 'ipv5'\)/,
    });
  });
});
