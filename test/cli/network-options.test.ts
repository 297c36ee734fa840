/** `lab up --node-cidr/--pod-cidr`: one range, or an IPv4 and an IPv6 range comma-separated. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { UsageError } from '../../src/cli/command.js';
import { cidrsByFamily } from '../../src/cli/network-options.js';

describe('lab up CIDR options', () => {
  test('none given: the lab picks its defaults', () => {
    assert.deepEqual(cidrsByFamily(undefined, 'pod-cidr', 'dual'), {});
  });

  test('one range goes to its family; a pair is split by family in either order', () => {
    assert.deepEqual(cidrsByFamily('10.77.0.0/16', 'pod-cidr', 'ipv4'), { v4: '10.77.0.0/16' });
    assert.deepEqual(cidrsByFamily('fd00:77::/56', 'pod-cidr', 'ipv6'), { v6: 'fd00:77::/56' });
    assert.deepEqual(cidrsByFamily('10.77.0.0/16, fd00:77::/56', 'pod-cidr', 'dual'), {
      v4: '10.77.0.0/16',
      v6: 'fd00:77::/56',
    });
    assert.deepEqual(cidrsByFamily('fd00:77::/56,10.77.0.0/16', 'pod-cidr', 'dual'), {
      v4: '10.77.0.0/16',
      v6: 'fd00:77::/56',
    });
    // In a dual lab one family may be given and the other left to its default.
    assert.deepEqual(cidrsByFamily('fd00:77::/56', 'pod-cidr', 'dual'), { v6: 'fd00:77::/56' });
  });

  test('a range of a family the lab does not have, two of one family, or a malformed list: usage errors', () => {
    const fails = (value: string, family: 'ipv4' | 'ipv6' | 'dual', message: RegExp) =>
      assert.throws(
        () => cidrsByFamily(value, 'pod-cidr', family),
        (err: unknown) => err instanceof UsageError && message.test(err.message),
      );
    fails(
      'fd00:77::/56',
      'ipv4',
      /^--pod-cidr fd00:77::\/56 is an IPv6 range; add --ip-family ipv6 or dual$/,
    );
    fails('10.77.0.0/16,fd00:77::/56', 'ipv4', /is an IPv6 range/);
    fails(
      '10.77.0.0/16',
      'ipv6',
      /^--pod-cidr 10\.77\.0\.0\/16 is an IPv4 range, and --ip-family ipv6 has no IPv4/,
    );
    fails('10.77.0.0/16,10.78.0.0/16', 'dual', /^--pod-cidr has two IPv4 ranges/);
    fails('fd00:77::/56,fd00:78::/56', 'dual', /^--pod-cidr has two IPv6 ranges/);
    fails('10.77.0.0/16,', 'dual', /takes one range, or an IPv4 and an IPv6 range separated by a comma/);
    fails('10.1.0.0/16,fd00::/56,10.2.0.0/16', 'dual', /takes one range, or an IPv4 and an IPv6 range/);
  });
});
