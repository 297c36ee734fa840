import assert from 'node:assert/strict';
import { test } from 'node:test';
import { unmapIPv4 } from '../../src/net/ip.js';

test('IPv4-mapped addresses are unmapped; anything else is unchanged', () => {
  assert.equal(unmapIPv4('::ffff:10.0.0.2'), '10.0.0.2');
  assert.equal(unmapIPv4('::FFFF:10.0.0.2'), '10.0.0.2');
  assert.equal(unmapIPv4('10.0.0.2'), '10.0.0.2');
  assert.equal(unmapIPv4('fd00::2'), 'fd00::2');
  assert.equal(unmapIPv4('::ffff:fd00::2'), '::ffff:fd00::2');
});
