/**
 * Services' cluster IPs by IP family (issue 16): the lab API server assigns them as kube-apiserver
 * does from its service CIDRs: SingleStack in the cluster's primary family by default, both families
 * for PreferDualStack/RequireDualStack in a dual-stack cluster, and 422 Invalid for a family or
 * policy the cluster cannot serve. IPv4 only is the default, as before.
 */
import assert from 'node:assert/strict';
import { isIPv4, isIPv6 } from 'node:net';
import { after, describe, test } from 'node:test';
import type { ServiceFamily } from '../../src/lab/apiserver/index.js';
import { LabApi } from './helpers.js';

const SERVICES = '/api/v1/namespaces/svc/services';
const apis: LabApi[] = [];

async function cluster(serviceFamilies?: ServiceFamily[]): Promise<LabApi> {
  const api = await LabApi.start(serviceFamilies ? { serviceFamilies } : {});
  apis.push(api);
  assert.equal((await api.call('POST', '/api/v1/namespaces', { metadata: { name: 'svc' } })).status, 201);
  return api;
}

const service = (name: string, spec: Record<string, unknown> = {}) => ({
  metadata: { name },
  spec: { selector: { app: name }, ports: [{ port: 8000 }], ...spec },
});

after(async () => {
  for (const api of apis) await api.stop();
});

describe('service cluster IPs by family', () => {
  test('an IPv4 cluster (the default) gives IPv4 SingleStack and refuses IPv6 and RequireDualStack', async () => {
    const api = await cluster();
    const svc = (await api.call('POST', SERVICES, service('a'))).body.spec;
    assert.ok(isIPv4(svc.clusterIP), svc.clusterIP);
    assert.deepEqual(
      [svc.clusterIPs, svc.ipFamilies, svc.ipFamilyPolicy],
      [[svc.clusterIP], ['IPv4'], 'SingleStack'],
    );
    const v6 = await api.call('POST', SERVICES, service('b', { ipFamilies: ['IPv6'] }));
    assert.equal(v6.status, 422);
    assert.match(v6.body.message, /spec\.ipFamilies\[0\].*"IPv6": not configured on this cluster/);
    const dual = await api.call('POST', SERVICES, service('c', { ipFamilyPolicy: 'RequireDualStack' }));
    assert.equal(dual.status, 422);
    assert.match(dual.body.message, /not configured for dual-stack services/);
    // PreferDualStack falls back to the one family there is.
    const prefer = (await api.call('POST', SERVICES, service('d', { ipFamilyPolicy: 'PreferDualStack' })))
      .body.spec;
    assert.deepEqual(prefer.ipFamilies, ['IPv4']);
    assert.equal(prefer.clusterIPs.length, 1);
  });

  test('an IPv6 cluster gives IPv6 cluster IPs from fd00:10:96::/112, each free', async () => {
    const api = await cluster(['IPv6']);
    const a = (await api.call('POST', SERVICES, service('a'))).body.spec;
    const b = (await api.call('POST', SERVICES, service('b'))).body.spec;
    for (const s of [a, b]) {
      assert.ok(isIPv6(s.clusterIP) && s.clusterIP.startsWith('fd00:10:96::'), s.clusterIP);
      assert.deepEqual(s.ipFamilies, ['IPv6']);
    }
    assert.notEqual(a.clusterIP, b.clusterIP);
  });

  test('a dual-stack cluster: SingleStack in the primary family by default, both families for dual-stack policies, asked family first', async () => {
    const api = await cluster(['IPv4', 'IPv6']);
    const single = (await api.call('POST', SERVICES, service('a'))).body.spec;
    assert.deepEqual(single.ipFamilies, ['IPv4']);
    const dual = (await api.call('POST', SERVICES, service('b', { ipFamilyPolicy: 'RequireDualStack' }))).body
      .spec;
    assert.deepEqual(dual.ipFamilies, ['IPv4', 'IPv6']);
    assert.ok(isIPv4(dual.clusterIPs[0]) && isIPv6(dual.clusterIPs[1]), JSON.stringify(dual.clusterIPs));
    assert.equal(dual.clusterIP, dual.clusterIPs[0]);
    const v6first = (
      await api.call(
        'POST',
        SERVICES,
        service('c', { ipFamilyPolicy: 'PreferDualStack', ipFamilies: ['IPv6'] }),
      )
    ).body.spec;
    assert.deepEqual(v6first.ipFamilies, ['IPv6', 'IPv4']);
    assert.ok(isIPv6(v6first.clusterIP));
    assert.notEqual(
      v6first.clusterIPs[0],
      dual.clusterIPs[1],
      'a used IPv6 cluster IP is not handed out again',
    );
    const v6only = (await api.call('POST', SERVICES, service('d', { ipFamilies: ['IPv6'] }))).body.spec;
    assert.deepEqual([v6only.ipFamilies, v6only.ipFamilyPolicy], [['IPv6'], 'SingleStack']);
    const twoSingle = await api.call('POST', SERVICES, service('e', { ipFamilies: ['IPv4', 'IPv6'] }));
    assert.equal(twoSingle.status, 422);
    assert.match(twoSingle.body.message, /RequireDualStack or PreferDualStack when multiple ipFamilies/);
    const badPolicy = await api.call('POST', SERVICES, service('f', { ipFamilyPolicy: 'Dual' }));
    assert.equal(badPolicy.status, 422);
    assert.match(badPolicy.body.message, /Unsupported value: "Dual"/);
  });
});
