/** The DNS proxy's pure parts: the names a query may mean, answers from the store, resolv.conf, error answers. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { WorkloadStore } from '../../../src/discovery/store.js';
import type { Service } from '../../../src/discovery/types.js';
import { lookupService } from '../../../src/ztunnel/dns/lookup.js';
import { aliases } from '../../../src/ztunnel/dns/names.js';
import { parseResolvConf } from '../../../src/ztunnel/dns/resolv-conf.js';
import { errorAnswer, RCODE } from '../../../src/ztunnel/dns/server.js';

function service(name: string, namespace: string, vips: string[]): Service {
  return {
    name,
    namespace,
    hostname: `${name}.${namespace}.svc.cluster.local`,
    vips: vips.map((address) => ({ network: '', address })),
    ports: new Map(),
    subjectAltNames: [],
    canonical: true,
  };
}

describe('aliases', () => {
  const names = (q: string) =>
    aliases(q, 'ns1', 'cluster.local').map((a) => `${a.name}${a.stripped ? ` <- ${a.stripped}` : ''}`);
  it("expands Kubernetes short forms from the pod's namespace", () => {
    assert.deepEqual(names('name'), ['name', 'name.ns1.svc.cluster.local']);
    assert.deepEqual(names('Name.NS2.'), ['name.ns2', 'name.ns2.svc.cluster.local']);
    assert.deepEqual(names('name.ns2.svc'), ['name.ns2.svc', 'name.ns2.svc.cluster.local']);
    assert.deepEqual(names('name.ns2.not-svc'), ['name.ns2.not-svc']);
    assert.deepEqual(names('name.ns2.svc.cluster.local'), [
      'name.ns2.svc.cluster.local',
      'name.ns2 <- name.ns2',
      'name.ns2.svc <- name.ns2.svc',
    ]);
  });
  it('takes a search domain off and expands what is left', () => {
    assert.deepEqual(names('name.ns2.ns1.svc.cluster.local'), [
      'name.ns2.ns1.svc.cluster.local',
      'name.ns2 <- name.ns2',
      'name.ns2.svc.cluster.local <- name.ns2',
      'name.ns2.ns1 <- name.ns2.ns1',
      'name.ns2.ns1.svc <- name.ns2.ns1.svc',
    ]);
  });
  it('an empty or root name has no alias', () => {
    assert.deepEqual(names('.'), []);
  });
});

describe('lookupService', () => {
  const store = new WorkloadStore();
  store.apply({
    services: [
      service('web', 'ns1', ['10.0.0.1', 'fd00::1']),
      service('web', 'ns2', ['10.0.0.2']),
      service('v6only', 'ns1', ['fd00::6']),
    ],
  });
  const ask = (name: string, type: 'A' | 'AAAA' = 'A', namespace = 'ns1') =>
    lookupService(store, { name, type }, { namespace, network: '' }, 'cluster.local');

  it('answers A and AAAA from the VIPs of the family asked', () => {
    assert.deepEqual(ask('web.ns1.svc.cluster.local')?.answers, [
      { type: 'A', name: 'web.ns1.svc.cluster.local', ttl: 30, data: '10.0.0.1' },
    ]);
    assert.deepEqual(ask('web', 'AAAA')?.answers, [{ type: 'AAAA', name: 'web', ttl: 30, data: 'fd00::1' }]);
    assert.deepEqual(ask('web', 'A', 'ns2')?.answers, [
      { type: 'A', name: 'web', ttl: 30, data: '10.0.0.2' },
    ]);
  });
  it('a name found once a search domain is off gets a CNAME to the shorter name', () => {
    assert.deepEqual(ask('web.ns2.ns1.svc.cluster.local')?.answers, [
      { type: 'CNAME', name: 'web.ns2.ns1.svc.cluster.local', ttl: 30, data: 'web.ns2' },
      { type: 'A', name: 'web.ns2', ttl: 30, data: '10.0.0.2' },
    ]);
  });
  it('a known service without that family answers no records; an unknown name is not ours (forward)', () => {
    assert.deepEqual(ask('v6only')?.answers, []);
    assert.equal(ask('nosuch.ns1.svc.cluster.local'), undefined);
    assert.equal(ask('example.com'), undefined);
  });
});

describe('parseResolvConf', () => {
  it('takes the nameserver lines (at most three), skipping comments and junk', () => {
    assert.deepEqual(
      parseResolvConf(
        '# generated\nsearch a.svc.cluster.local\nnameserver 10.96.0.10\nnameserver not-an-ip\nnameserver fd00::a ; x\nnameserver 1.1.1.1\nnameserver 8.8.8.8\noptions ndots:5\n',
      ),
      ['10.96.0.10', 'fd00::a', '1.1.1.1'],
    );
  });
  it("none: resolv.conf's own default, the local host", () => {
    assert.deepEqual(parseResolvConf('search x\n'), ['127.0.0.1']);
  });
});

describe('errorAnswer', () => {
  it('keeps the id, opcode and RD bit; sets QR and the code; no records', () => {
    const query = Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff]);
    const answer = errorAnswer(query, RCODE.FORMERR);
    assert.deepEqual([...answer], [0x12, 0x34, 0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
  });
  it('echoes the question it read (SERVFAIL when forwarding failed)', () => {
    const query = dnsPacket.encode({
      type: 'query',
      id: 9,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type: 'A', name: 'example.test' }],
    });
    const answer = dnsPacket.decode(errorAnswer(query, RCODE.SERVFAIL, { type: 'A', name: 'example.test' }));
    assert.equal(answer.id, 9);
    assert.equal(answer.type, 'response');
    assert.equal((answer as { rcode?: string }).rcode, 'SERVFAIL');
    assert.equal(answer.flag_rd, true);
    assert.deepEqual(answer.questions, [{ type: 'A', name: 'example.test', class: 'IN' }]);
  });
});
