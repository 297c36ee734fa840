import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AmbitError } from '../../src/errors.js';
import {
  baggageHeader,
  connectHeaders,
  formatAuthority,
  forwardedHeader,
  parseAuthority,
  traceparentHeader,
} from '../../src/hbone/headers.js';

test('CONNECT headers: :authority ip:port, no :scheme/:path, forwarded, baggage, traceparent', () => {
  const h = connectHeaders({
    targetIp: '10.0.0.2',
    targetPort: 8000,
    srcIp: '10.0.0.1',
    srcPort: 40000,
    baggage: {
      clusterId: 'c1',
      namespace: 'default',
      workloadType: 'Deployment',
      workloadName: 'sleep',
      canonicalName: 'sleep',
      canonicalRevision: 'v1',
    },
    traceparent: '00-0123456789abcdef0123456789abcdef-0123456789abcdef-00',
  });
  assert.deepEqual(h, {
    ':method': 'CONNECT',
    ':authority': '10.0.0.2:8000',
    forwarded: 'for="10.0.0.1:40000"',
    traceparent: '00-0123456789abcdef0123456789abcdef-0123456789abcdef-00',
    baggage:
      'k8s.cluster.name=c1,k8s.namespace.name=default,k8s.deployment.name=sleep,service.name=sleep,service.version=v1',
  });
});

test('IPv6 is bracketed in :authority and forwarded; service host is appended', () => {
  assert.equal(formatAuthority('fd00::2', 80), '[fd00::2]:80');
  assert.equal(
    forwardedHeader('fd00::1', 5, 'web.default.svc.cluster.local'),
    'for="[fd00::1]:5";host=web.default.svc.cluster.local',
  );
});

test('baggage omits empty values and header is absent when nothing is known', () => {
  assert.equal(
    baggageHeader({ namespace: 'ns', region: '', zone: 'z1' }),
    'k8s.namespace.name=ns,cloud.availability_zone=z1',
  );
  const h = connectHeaders({ targetIp: '1.2.3.4', targetPort: 1, srcIp: '1.2.3.5', srcPort: 2, baggage: {} });
  assert.equal('baggage' in h, false);
});

test('traceparent is W3C version 00 with random ids', () => {
  const a = traceparentHeader();
  assert.match(a, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
  assert.notEqual(a, traceparentHeader());
});

test('parseAuthority accepts ip:port and [v6]:port', () => {
  assert.deepEqual(parseAuthority('10.0.0.2:8000'), { ip: '10.0.0.2', port: 8000 });
  assert.deepEqual(parseAuthority('[fd00::2]:443'), { ip: 'fd00::2', port: 443 });
});

for (const bad of [
  undefined,
  '',
  'example.com:80',
  '10.0.0.2',
  '10.0.0.300:80',
  '10.0.0.2:0',
  '10.0.0.2:70000',
  'fd00::2:80',
  '[zz::1]:80',
]) {
  test(`parseAuthority rejects ${JSON.stringify(bad)} with ERR_HBONE_AUTHORITY`, () => {
    assert.throws(
      () => parseAuthority(bad),
      (e: AmbitError) => e.code === 'ERR_HBONE_AUTHORITY',
    );
  });
}
