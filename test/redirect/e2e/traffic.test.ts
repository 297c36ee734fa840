/**
 * Real traffic through the in-pod rules: pod A is enrolled, test listeners with the proxy's socket
 * options stand in for ztunnel on 15001/15006/15008, pod B is a peer.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createRedirector } from '../../../src/redirect/index.js';
import { originalDst, unmapIPv4 } from '../../../src/sys/index.js';
import { TestNetns } from '../../helpers/netns.js';
import { normalizeSave, PodPair } from '../../redirect/pods.js';

const seed = readFileSync(
  new URL('../../../../test/redirect/golden/seed-iptables-save.txt', import.meta.url),
  'utf8',
);

describe('iptables, inbound tproxy (the seed)', () => {
  let pods: PodPair;
  let node: TestNetns;
  let l15001: Server;
  let l15006: Server;
  let l15008: Server;

  before(async () => {
    node = new TestNetns();
    pods = new PodPair();
    await createRedirector({ nodeNetns: node.path }).apply(pods.a, [pods.addrA]);
    l15001 = await pods.listen('a', 15001, true);
    l15006 = await pods.listen('a', 15006, true);
    l15008 = await pods.listen('a', 15008, true);
  });
  after(async () => {
    try {
      await pods?.close();
    } finally {
      node?.remove();
    }
  });

  it("iptables-save in the pod shows exactly the seed's mangle and nat sections", () => {
    assert.equal(normalizeSave(pods.pair.a.exec('iptables-save', [])), normalizeSave(seed));
  });

  it('the policy route for mark 0x111 is in place', () => {
    assert.match(
      pods.pair.a.exec('ip', ['rule', 'show']),
      /^32764:\s+from all fwmark 0x111\/0xfff lookup 100\s*$/m,
    );
    assert.match(pods.pair.a.exec('ip', ['route', 'show', 'table', '100']), /^local default dev lo/m);
  });

  it('outbound to another pod lands on 15001 with SO_ORIGINAL_DST = the dialled address', async () => {
    const accepted = pods.nextConnection(l15001);
    const client = await pods.dial('a', { host: pods.addrB, port: 8080 });
    const server = await accepted;
    assert.deepEqual(originalDst(server), { address: pods.addrB, port: 8080, family: 'IPv4' });
    assert.equal(await pods.exchange(client, server), 'ping\n');
  });

  it('inbound plaintext lands on 15006 with the original destination as local address', async () => {
    const accepted = pods.nextConnection(l15006);
    const client = await pods.dial('b', { host: pods.addrA, port: 80 });
    const server = await accepted;
    assert.equal(unmapIPv4(server.localAddress ?? ''), pods.addrA);
    assert.equal(server.localPort, 80);
    assert.equal(unmapIPv4(server.remoteAddress ?? ''), pods.addrB);
    assert.equal(await pods.exchange(server, client), 'ping\n');
  });

  it('a connection to pod:15008 lands on the 15008 listener', async () => {
    const accepted = pods.nextConnection(l15008);
    const client = await pods.dial('b', { host: pods.addrA, port: 15008 });
    const server = await accepted;
    assert.equal(server.localPort, 15008);
    assert.equal(await pods.exchange(client, server), 'ping\n');
  });

  it('a socket marked 0x539 bypasses capture (reaches the real peer)', async () => {
    const peer = await pods.listen('b', 8081);
    const accepted = pods.nextConnection(peer);
    const client = await pods.dial('a', { host: pods.addrB, port: 8081, mark: 0x539 });
    const server = await accepted;
    assert.equal(unmapIPv4(server.localAddress ?? ''), pods.addrB);
    assert.equal(await pods.exchange(client, server), 'ping\n');
  });

  it('a connection from 169.254.7.127 (the probe source) is not captured', async () => {
    pods.pair.b.exec('ip', ['addr', 'add', '169.254.7.127/32', 'dev', pods.iface('b')]);
    pods.pair.a.exec('ip', ['route', 'add', '169.254.7.127/32', 'dev', pods.iface('a')]);
    const app = await pods.listen('a', 8082);
    const accepted = pods.nextConnection(app);
    const client = await pods.dial('b', { host: pods.addrA, port: 8082, localAddress: '169.254.7.127' });
    const server = await accepted;
    assert.equal(unmapIPv4(server.remoteAddress ?? ''), '169.254.7.127');
    assert.equal(server.localPort, 8082);
    assert.equal(await pods.exchange(server, client), 'ping\n');
  });

  it('replies of a transparent connection made with mark 0x539 come back (connmark + policy route)', async () => {
    const app = await pods.listen('a', 8083);
    const accepted = pods.nextConnection(app);
    const spoofed = await pods.dial('a', {
      host: pods.addrA,
      port: 8083,
      localAddress: pods.addrB,
      transparent: true,
      mark: 0x539,
    });
    const server = await accepted;
    assert.equal(unmapIPv4(server.remoteAddress ?? ''), pods.addrB);
    assert.equal(await pods.exchange(server, spoofed, 'reply\n'), 'reply\n');
  });

  it('the reply path needs the policy route: mark 0x111 routes to lo, and without the rule it would leave the pod', () => {
    const routeGet = () => pods.pair.a.exec('ip', ['route', 'get', pods.addrB, 'mark', '0x111']);
    assert.match(routeGet(), new RegExp(`^local ${pods.addrB.replaceAll('.', '\\.')} dev lo table 100`));
    pods.pair.a.exec('ip', ['rule', 'del', 'fwmark', '0x111/0xfff', 'pref', '32764', 'lookup', '100']);
    try {
      assert.match(routeGet(), new RegExp(`^${pods.addrB.replaceAll('.', '\\.')} dev ${pods.iface('a')}`));
    } finally {
      pods.pair.a.exec('ip', ['rule', 'add', 'fwmark', '0x111/0xfff', 'pref', '32764', 'lookup', '100']);
    }
  });
});

describe('iptables, inbound redirect', () => {
  let pods: PodPair;
  let l15001: Server;
  let l15006: Server;
  let l15008: Server;

  before(async () => {
    pods = new PodPair();
    await createRedirector({ inbound: 'redirect' }).apply(pods.a, [pods.addrA]);
    l15001 = await pods.listen('a', 15001, true);
    l15006 = await pods.listen('a', 15006, true);
    l15008 = await pods.listen('a', 15008, true);
  });
  after(async () => {
    await pods?.close();
  });

  it('inbound plaintext lands on 15006 with SO_ORIGINAL_DST = the dialled address', async () => {
    const accepted = pods.nextConnection(l15006);
    const client = await pods.dial('b', { host: pods.addrA, port: 80 });
    const server = await accepted;
    assert.equal(server.localPort, 15006);
    assert.deepEqual(originalDst(server), { address: pods.addrA, port: 80, family: 'IPv4' });
    assert.equal(await pods.exchange(client, server), 'ping\n');
  });

  it('outbound lands on 15001 and pod:15008 on 15008', async () => {
    const out = pods.nextConnection(l15001);
    await pods.dial('a', { host: pods.addrB, port: 9000 });
    assert.deepEqual(originalDst(await out), { address: pods.addrB, port: 9000, family: 'IPv4' });
    const hbone = pods.nextConnection(l15008);
    await pods.dial('b', { host: pods.addrA, port: 15008 });
    assert.equal((await hbone).localPort, 15008);
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
    const server = await accepted;
    assert.equal(await pods.exchange(server, spoofed), 'ping\n');
  });
});
