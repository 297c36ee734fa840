/**
 * Host probe rules: a local socket in the node netns (kubelet) dialling an enrolled pod IP is
 * SNATed to 169.254.7.127 and reaches the app, not the proxy; the ipset entry's UID guards removal.
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createRedirector } from '../../../src/redirect/index.js';
import { unmapIPv4 } from '../../../src/sys/index.js';
import { PodPair } from '../../redirect/pods.js';

describe('host probe rules (pod A, node = B)', () => {
  let pods: PodPair;
  let app: Server;
  let l15006: Server;
  const uid = '1e054806-e667-4109-a5af-08b3e6ba0c42';

  before(async () => {
    pods = new PodPair();
    // Replies to the probe source go back to the node, which undoes the SNAT.
    pods.pair.a.exec('ip', ['route', 'add', '169.254.7.127/32', 'via', pods.addrB]);
    const r = createRedirector({ nodeNetns: pods.pair.b.path });
    await r.apply(pods.a, [pods.addrA]);
    const probes = await r.hostProbes();
    await probes.install();
    await probes.install();
    app = await pods.listen('a', 8080);
    l15006 = await pods.listen('a', 15006, true);
  });
  after(async () => {
    await pods?.close();
  });

  it("the node's nat table has the ISTIO_POSTRT rules once, jump first", () => {
    const save = pods.pair.b.exec('iptables-save', ['-t', 'nat']);
    const rules = save.split('\n').filter((l) => l.startsWith('-A '));
    assert.deepEqual(rules, [
      '-A POSTROUTING -j ISTIO_POSTRT',
      '-A ISTIO_POSTRT -p tcp -m owner --socket-exists -m set --match-set istio-inpod-probes-v4 dst -j SNAT --to-source 169.254.7.127',
    ]);
    assert.match(
      pods.pair.b.exec('ip6tables-save', ['-t', 'nat']),
      /--match-set istio-inpod-probes-v6 dst -j SNAT --to-source fd16:9254:7127:1337:ffff:ffff:ffff:ffff/,
    );
  });

  it('an enrolled pod IP: the probe arrives from 169.254.7.127 at the app; removal needs the matching UID', async () => {
    const probes = await createRedirector({ nodeNetns: pods.pair.b.path }).hostProbes();
    await probes.addPodIp(uid, pods.addrA);
    assert.equal((await probes.entries()).get(pods.addrA), uid);

    const accepted = pods.nextConnection(app);
    const kubelet = await pods.dial('b', { host: pods.addrA, port: 8080 });
    const server = await accepted;
    assert.equal(unmapIPv4(server.remoteAddress ?? ''), '169.254.7.127');
    assert.equal(await pods.exchange(server, kubelet), 'ping\n');

    assert.equal(await probes.removePodIp('someone-else', pods.addrA), false);
    assert.equal((await probes.entries()).get(pods.addrA), uid);
    await probes.addPodIp('new-owner', pods.addrA);
    assert.equal(await probes.removePodIp(uid, pods.addrA), false);
    assert.equal(await probes.removePodIp('new-owner', pods.addrA), true);
    assert.equal((await probes.entries()).has(pods.addrA), false);

    // Without an entry the same connection is plain node traffic: captured by the proxy's 15006.
    const captured = pods.nextConnection(l15006);
    await pods.dial('b', { host: pods.addrA, port: 8080 });
    assert.equal(unmapIPv4((await captured).remoteAddress ?? ''), pods.addrB);
  });

  it('uninstall removes the rules and the sets', async () => {
    const probes = await createRedirector({ nodeNetns: pods.pair.b.path }).hostProbes();
    await probes.uninstall();
    assert.doesNotMatch(pods.pair.b.exec('iptables-save', []), /ISTIO/);
    assert.equal(pods.pair.b.exec('ipset', ['list', '-n']).trim(), '');
  });

  it('a bad IP is refused with a clear error', async () => {
    const probes = await createRedirector({ nodeNetns: pods.pair.b.path }).hostProbes();
    await assert.rejects(probes.addPodIp(uid, 'not-an-ip'), /'not-an-ip' is not an IP address/);
  });
});
