/** The nftables backend: same capture behaviour as the seed's iptables rules, and its operations. */
import assert from 'node:assert/strict';
import type { Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createRedirector } from '../../../src/redirect/index.js';
import { originalDst, unmapIPv4 } from '../../../src/sys/index.js';
import { PodPair } from '../../redirect/pods.js';

describe('nftables backend, inbound tproxy', () => {
  let pods: PodPair;
  let l15001: Server;
  let l15006: Server;
  let l15008: Server;
  let rulesBefore: string;
  const r = createRedirector({ backend: 'nftables' });

  before(async () => {
    pods = new PodPair();
    rulesBefore = pods.pair.a.exec('ip', ['rule']);
    assert.equal(await r.apply(pods.a, [pods.addrA]), 'applied');
    l15001 = await pods.listen('a', 15001, true);
    l15006 = await pods.listen('a', 15006, true);
    l15008 = await pods.listen('a', 15008, true);
  });
  after(async () => {
    await pods?.close();
  });

  it('apply again is a no-op and verify is clean', async () => {
    const listing = pods.pair.a.exec('nft', ['list', 'ruleset']);
    assert.equal(await r.apply(pods.a, [pods.addrA]), 'unchanged');
    assert.equal(pods.pair.a.exec('nft', ['list', 'ruleset']), listing);
    assert.equal((await r.verify(pods.a, [pods.addrA])).ok, true);
    assert.match(listing, /table inet istio-ambient-mangle/);
    assert.doesNotMatch(pods.pair.a.exec('iptables-save', []), /ISTIO/);
  });

  it('outbound lands on 15001 with SO_ORIGINAL_DST = the dialled address', async () => {
    const accepted = pods.nextConnection(l15001);
    const client = await pods.dial('a', { host: pods.addrB, port: 8080 });
    const server = await accepted;
    assert.deepEqual(originalDst(server), { address: pods.addrB, port: 8080, family: 'IPv4' });
    assert.equal(await pods.exchange(client, server), 'ping\n');
  });

  it('inbound plaintext lands on 15006 with the original destination as local address', async () => {
    const accepted = pods.nextConnection(l15006);
    await pods.dial('b', { host: pods.addrA, port: 80 });
    const server = await accepted;
    assert.equal(unmapIPv4(server.localAddress ?? ''), pods.addrA);
    assert.equal(server.localPort, 80);
  });

  it('pod:15008 lands on the 15008 listener', async () => {
    const accepted = pods.nextConnection(l15008);
    await pods.dial('b', { host: pods.addrA, port: 15008 });
    assert.equal((await accepted).localPort, 15008);
  });

  it('a socket marked 0x539 bypasses capture', async () => {
    const peer = await pods.listen('b', 8081);
    const accepted = pods.nextConnection(peer);
    const client = await pods.dial('a', { host: pods.addrB, port: 8081, mark: 0x539 });
    assert.equal(await pods.exchange(client, await accepted), 'ping\n');
  });

  it('replies of a transparent connection made with mark 0x539 come back', async () => {
    const app = await pods.listen('a', 8083);
    const accepted = pods.nextConnection(app);
    const spoofed = await pods.dial('a', {
      host: pods.addrA,
      port: 8083,
      localAddress: pods.addrB,
      transparent: true,
      mark: 0x539,
    });
    assert.equal(await pods.exchange(await accepted, spoofed), 'ping\n');
  });

  it('verify reports a deleted rule; reconcile restores it', async () => {
    const listing = pods.pair.a.exec('nft', [
      '-a',
      'list',
      'chain',
      'inet',
      'istio-ambient-nat',
      'istio-output',
    ]);
    const handle = /meta mark & 0x00000fff == 0x00000111 accept # handle (\d+)/.exec(listing)?.[1];
    assert.ok(handle, listing);
    pods.pair.a.exec('nft', [
      'delete',
      'rule',
      'inet',
      'istio-ambient-nat',
      'istio-output',
      'handle',
      handle,
    ]);
    pods.pair.a.exec('nft', [
      'add',
      'rule',
      'inet',
      'istio-ambient-nat',
      'istio-output',
      'ip',
      'daddr',
      '10.70.1.1',
      'accept',
    ]);
    const v = await r.verify(pods.a, [pods.addrA]);
    assert.deepEqual(v.missing, [
      'istio-ambient-nat istio-output: meta l4proto tcp meta mark & 0x00000fff == 0x00000111 accept',
    ]);
    assert.deepEqual(v.unexpected, ['istio-ambient-nat istio-output: ip daddr 10.70.1.1 accept']);
    assert.equal(await r.reconcile(pods.a, [pods.addrA]), 'repaired');
    assert.equal((await r.verify(pods.a, [pods.addrA])).ok, true);
  });

  it('remove deletes our tables and the policy route, leaving other tables alone', async () => {
    pods.pair.a.exec('nft', ['add', 'table', 'inet', 'ambit-foreign']);
    assert.equal(await r.remove(pods.a), 'removed');
    const tables = pods.pair.a.exec('nft', ['list', 'tables']);
    assert.doesNotMatch(tables, /istio-ambient/);
    assert.match(tables, /table inet ambit-foreign/);
    assert.equal(pods.pair.a.exec('ip', ['rule']), rulesBefore);
    assert.equal(await r.remove(pods.a), 'removed');
  });
});

describe('nftables backend, inbound redirect', () => {
  let pods: PodPair;
  before(async () => {
    pods = new PodPair();
    await createRedirector({ backend: 'nftables', inbound: 'redirect' }).apply(pods.a, [pods.addrA]);
  });
  after(async () => {
    await pods?.close();
  });

  it('inbound plaintext lands on 15006 with SO_ORIGINAL_DST; 15008 is not redirected', async () => {
    const l15006 = await pods.listen('a', 15006, true);
    const l15008 = await pods.listen('a', 15008, true);
    const accepted = pods.nextConnection(l15006);
    await pods.dial('b', { host: pods.addrA, port: 80 });
    const server = await accepted;
    assert.equal(server.localPort, 15006);
    assert.deepEqual(originalDst(server), { address: pods.addrA, port: 80, family: 'IPv4' });
    const hbone = pods.nextConnection(l15008);
    await pods.dial('b', { host: pods.addrA, port: 15008 });
    assert.equal((await hbone).localPort, 15008);
  });
});
