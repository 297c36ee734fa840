import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatCidr, hostAddress, overlaps, parseCidr, subnet } from '../../src/lab/cidr.js';
import { nodeConflist } from '../../src/lab/conflist.js';
import { planNodes } from '../../src/lab/lab.js';
import { checkLabName, chooseLab, parsePodRef, podNetns } from '../../src/lab/names.js';
import { parsePrimaryCni } from '../../src/lab/primary-cni.js';

describe('CIDR arithmetic', () => {
  test('parse, format, host and subnet', () => {
    const c = parseCidr('10.244.0.0/16');
    assert.equal(formatCidr(c), '10.244.0.0/16');
    assert.equal(hostAddress(c, 1), '10.244.0.1');
    assert.equal(formatCidr(subnet(c, 24, 3)), '10.244.3.0/24');
    assert.equal(formatCidr(subnet(parseCidr('10.70.9.0/24'), 26, 3)), '10.70.9.192/26');
    assert.equal(overlaps(parseCidr('10.0.0.0/8'), parseCidr('10.9.0.0/16')), true);
    assert.equal(overlaps(parseCidr('10.0.0.0/24'), parseCidr('10.0.1.0/24')), false);
  });

  test('bad CIDRs fail with LAB_BAD_CIDR and say why', () => {
    assert.throws(() => parseCidr('10.1.2.3/16'), {
      code: 'LAB_BAD_CIDR',
      message: /did you mean 10\.1\.0\.0\/16/,
    });
    assert.throws(() => parseCidr('10.1.2.0'), { code: 'LAB_BAD_CIDR' });
    assert.throws(() => parseCidr('10.1.2.300/24'), { code: 'LAB_BAD_CIDR' });
    assert.throws(() => parseCidr('10.0.0.0/31'), { code: 'LAB_BAD_CIDR', message: /between 8 and 30/ });
    assert.throws(() => subnet(parseCidr('10.0.0.0/24'), 26, 4), { code: 'LAB_SUBNET_TOO_SMALL' });
  });
});

describe('lab plan', () => {
  test('defaults: nodes on 10.240.0.0/24, node nK owns pod block K', () => {
    const state = planNodes('plan', { name: 'plan', nodes: 2 });
    assert.deepEqual(
      state.nodes.map((n) => [n.name, n.netns, n.ip, n.podCidr, n.podGateway]),
      [
        ['n1', 'ambit-plan-n1', '10.240.0.1', '10.244.1.0/24', '10.244.1.1'],
        ['n2', 'ambit-plan-n2', '10.240.0.2', '10.244.2.0/24', '10.244.2.1'],
      ],
    );
    assert.equal(state.fabric.netns, 'ambit-plan-fabric');
    assert.deepEqual(state.pluginDirs, ['/usr/lib/cni']);
  });

  test('too many nodes for the pod CIDR, overlapping ranges and bad counts are refused', () => {
    const small = { name: 'p', podCidr: '10.70.9.0/24', nodeCidr: '10.71.0.0/24', nodeMask: 26 };
    assert.equal(planNodes('p', { ...small, nodes: 3 }).nodes[2]!.podCidr, '10.70.9.192/26');
    assert.throws(() => planNodes('p', { ...small, nodes: 4 }), { code: 'LAB_SUBNET_TOO_SMALL' });
    assert.throws(() => planNodes('p', { ...small, nodeCidr: '10.70.9.0/25', nodes: 1 }), {
      code: 'LAB_BAD_CIDR',
      message: /overlaps/,
    });
    assert.throws(() => planNodes('p', { ...small, nodeMask: 24, nodes: 1 }), { code: 'LAB_BAD_CIDR' });
    assert.throws(() => planNodes('p', { name: 'p', nodes: 0 }), { code: 'LAB_BAD_NODES' });
  });

  test("the node conflist is bridge + host-local over the node's pod CIDR + loopback", () => {
    const state = planNodes('plan', { name: 'plan', nodes: 1 });
    const list = nodeConflist(state, state.nodes[0]!);
    assert.deepEqual(
      list.plugins.map((p) => p.type),
      ['bridge', 'loopback'],
    );
    const bridge = list.plugins[0]!;
    assert.equal(bridge['isGateway'], true);
    assert.equal(bridge['ipMasq'], false);
    assert.deepEqual(bridge['ipam'], {
      type: 'host-local',
      ranges: [[{ subnet: '10.244.1.0/24', gateway: '10.244.1.1' }]],
      routes: [{ dst: '0.0.0.0/0' }],
      dataDir: '/var/run/ambit/lab/plan/ipam/n1',
    });
  });

  test('--primary-cni: the default is bridge; an unknown plugin is refused naming the choices', () => {
    assert.equal(planNodes('plan', { name: 'plan', nodes: 1 }).primaryCni, 'bridge');
    assert.throws(() => planNodes('plan', { name: 'plan', nodes: 1, primaryCni: 'calico' as never }), {
      code: 'LAB_BAD_PRIMARY_CNI',
      message: "unknown primary CNI 'calico' (one of: bridge, ptp, ipvlan, macvlan)",
    });
    assert.equal(parsePrimaryCni('ptp'), 'ptp');
  });

  test("ptp: a veth per pod, routed by the node, host-local over the node's pod CIDR", () => {
    const state = planNodes('plan', { name: 'plan', nodes: 2, primaryCni: 'ptp' });
    const list = nodeConflist(state, state.nodes[1]!);
    assert.deepEqual(list.plugins, [
      {
        type: 'ptp',
        ipMasq: false,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: '10.244.2.0/24', gateway: '10.244.2.1' }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: '/var/run/ambit/lab/plan/ipam/n2',
        },
      },
      { type: 'loopback' },
    ]);
  });

  test("ipvlan and macvlan: on the node's uplink, the whole pod CIDR on-link, the node's block handed out", () => {
    for (const [primary, mode] of [
      ['ipvlan', 'l2'],
      ['macvlan', 'bridge'],
    ] as const) {
      const state = planNodes('plan', { name: 'plan', nodes: 2, primaryCni: primary });
      const [plugin, loopback] = nodeConflist(state, state.nodes[1]!).plugins;
      assert.deepEqual(loopback, { type: 'loopback' });
      assert.deepEqual(plugin, {
        type: primary,
        master: 'ambit-up',
        mode,
        ipam: {
          type: 'host-local',
          ranges: [
            [
              {
                subnet: '10.244.0.0/16',
                rangeStart: '10.244.2.2',
                rangeEnd: '10.244.2.254',
                gateway: '10.244.2.1',
              },
            ],
          ],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: '/var/run/ambit/lab/plan/ipam/n2',
        },
      });
    }
    // The last node's block ends on the cluster range's broadcast address: never handed out.
    const small = planNodes('plan', {
      name: 'plan',
      nodes: 3,
      podCidr: '10.70.9.0/24',
      nodeCidr: '10.71.0.0/24',
      nodeMask: 26,
      primaryCni: 'macvlan',
    });
    const ipam = nodeConflist(small, small.nodes[2]!).plugins[0]!['ipam'] as { ranges: unknown };
    assert.deepEqual(ipam.ranges, [
      [
        {
          subnet: '10.70.9.0/24',
          rangeStart: '10.70.9.194',
          rangeEnd: '10.70.9.254',
          gateway: '10.70.9.193',
        },
      ],
    ]);
  });
});

describe('names', () => {
  test('lab names are short and dash-free so prefixes never overlap', () => {
    assert.equal(checkLabName('demo'), 'demo');
    for (const bad of ['demo-x', 'Demo', '1lab', '', 'a'.repeat(17), 't']) {
      assert.throws(() => checkLabName(bad), { code: 'LAB_BAD_NAME' });
    }
  });

  test('pod refs follow Kubernetes naming and map to distinct netns names', () => {
    assert.deepEqual(parsePodRef('ambient-demo/sleep'), { namespace: 'ambient-demo', name: 'sleep' });
    for (const bad of ['sleep', 'a/b/c', '/x', 'A/b', 'a/b_c', 'a/-b']) {
      assert.throws(() => parsePodRef(bad), { code: 'LAB_BAD_POD' });
    }
    assert.notEqual(
      podNetns('l', { namespace: 'a-b', name: 'c' }),
      podNetns('l', { namespace: 'a', name: 'b-c' }),
    );
  });

  test('without --name: $AMBIT_LAB, else the only lab, else ambit; several labs are named, not guessed', () => {
    assert.equal(chooseLab('x', 'y', ['z']), 'x');
    assert.equal(chooseLab(undefined, 'y', ['z']), 'y');
    assert.equal(chooseLab(undefined, undefined, ['demo']), 'demo');
    assert.equal(chooseLab(undefined, undefined, []), 'ambit');
    assert.throws(() => chooseLab(undefined, undefined, ['ambit', 'demo']), {
      code: 'LAB_NOT_CHOSEN',
      message:
        /^2 labs exist \(ambit, demo\): pick one with --name NAME, .*lab status --name ambit.*AMBIT_LAB=NAME/,
    });
  });
});
