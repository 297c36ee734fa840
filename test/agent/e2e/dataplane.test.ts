/**
 * The mesh dataplane's order against real parts: a real pod netns and rules, the probe set in a
 * node netns, a real ZdsServer with a test proxy peer that ACKs or NACKs; only the annotation is
 * recorded (the order of its writes relative to the proxy's view is the point).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { MeshDataplane } from '../../../src/agent/mesh-dataplane.js';
import { NetnsFinder } from '../../../src/agent/netns-finder.js';
import { PodCache } from '../../../src/agent/pod-cache.js';
import { createRedirector, type HostProbes } from '../../../src/redirect/index.js';
import { connectSeqpacket, NetnsHandle } from '../../../src/sys/index.js';
import { decodeRequest, encodeHello, encodeResponse, ZdsServer } from '../../../src/zds/index.js';
import { run, TestNetns, uniqueSubnet } from '../../helpers/netns.js';
import { RawPeer } from '../../zds/fixtures/raw-peer.js';

describe('mesh dataplane order (real rules, probe set and ZDS)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-agent-dp-'));
  const node = new TestNetns();
  const podNs = new TestNetns();
  const ip = uniqueSubnet().host(5);
  const log: string[] = [];
  const redirector = createRedirector({ nodeNetns: node.path });
  let probes: HostProbes;
  let zds: ZdsServer;
  let peer: RawPeer | undefined;
  let nack = '';
  let cache: PodCache;
  let dp: MeshDataplane;
  const pod: V1Pod = { metadata: { name: 'p', namespace: 'ns', uid: 'uid-dp-1' }, status: { podIP: ip } };
  const rulesIn = () => run('ip', ['netns', 'exec', podNs.name, 'iptables-save']).includes('ISTIO_PRERT');
  const inProbeSet = () => node.exec('ipset', ['save', 'istio-inpod-probes-v4']).includes(ip);

  /** A proxy that records each request with the state of the pod at that moment, then answers. */
  const connectPeer = async () => {
    peer = new RawPeer(connectSeqpacket(zds.path));
    await peer.send(encodeHello({ version: 1 }));
    void (async () => {
      for (;;) {
        const m = await peer!.next().catch(() => 'closed' as const);
        if (m === 'closed') return;
        const req = decodeRequest(m);
        if (!req.ok) return;
        const kind = req.value.kind;
        log.push(`zds:${kind} rules=${rulesIn()} probe=${inProbeSet()}`);
        await peer!.send(encodeResponse({ kind: 'ack', error: kind === 'add' ? nack : '' }));
      }
    })();
    await new Promise<void>((r) => zds.once('snapshotSent', () => r()));
  };

  before(async () => {
    podNs.exec('ip', ['addr', 'add', `${ip}/32`, 'dev', 'lo']);
    probes = await redirector.hostProbes();
    await probes.install();
    cache = new PodCache();
    zds = ZdsServer.listen({ path: join(dir, 'zds.sock'), pods: cache });
    dp = new MeshDataplane({
      cache,
      finder: new NetnsFinder(),
      rules: redirector,
      proxy: zds,
      probes,
      annotator: {
        async set(_pod, value) {
          log.push(`annotate:${value} rules=${rulesIn()} probe=${inProbeSet()}`);
        },
      },
    });
  });
  after(() => {
    peer?.close();
    zds.close();
    cache.clear();
    podNs.remove();
    node.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  it('no proxy connected: rules stay, annotation pending, no probe entry, retryable error', async () => {
    await assert.rejects(
      dp.addPodToMesh(pod, [ip], podNs.path),
      (err: Error & { code?: string; retryable?: boolean }) => {
        assert.equal(err.code, 'AGENT_ZTUNNEL_FAILED');
        assert.equal(err.retryable, true);
        return true;
      },
    );
    assert.deepEqual(log.splice(0), ['annotate:pending rules=true probe=false']);
    assert.equal(rulesIn(), true);
    assert.ok(cache.get('uid-dp-1')?.netns, 'the netns stays cached for the retry');
  });

  it('a NACK is the same retryable pending state', async () => {
    await connectPeer();
    log.length = 0;
    nack = 'listen failed: EADDRINUSE';
    await assert.rejects(dp.addPodToMesh(pod, [ip], podNs.path), {
      code: 'AGENT_ZTUNNEL_FAILED',
      message: /EADDRINUSE/,
    });
    assert.deepEqual(log.splice(0), [
      'zds:add rules=true probe=false',
      'annotate:pending rules=true probe=false',
    ]);
  });

  it('add: rules, then the proxy (rules already there), then the probe entry, then `enabled`', async () => {
    nack = '';
    await dp.addPodToMesh(pod, [ip], podNs.path);
    assert.deepEqual(log.splice(0), [
      'zds:add rules=true probe=false',
      'annotate:enabled rules=true probe=true',
    ]);
  });

  it('remove: rules first (the proxy is told after they are gone), then the probe entry, then the annotation', async () => {
    await dp.removePodFromMesh(pod, false);
    assert.deepEqual(log.splice(0), [
      'zds:del rules=false probe=true',
      'annotate:null rules=false probe=false',
    ]);
    assert.equal(cache.get('uid-dp-1'), undefined);
  });

  it('a rule failure is not retryable and forgets the pod; an unknown netns likewise', async () => {
    const broken = new MeshDataplane({
      cache,
      finder: new NetnsFinder(),
      rules: createRedirector({ path: '/nonexistent' }),
      proxy: zds,
      probes,
      annotator: { set: async () => {} },
    });
    await assert.rejects(
      broken.addPodToMesh(pod, [ip], podNs.path),
      (err: Error & { code?: string; retryable?: boolean }) => {
        assert.equal(err.code, 'AGENT_RULES_FAILED');
        assert.equal(err.retryable, false);
        return true;
      },
    );
    assert.equal(cache.get('uid-dp-1'), undefined);
    await assert.rejects(dp.addPodToMesh(pod, [ip]), { code: 'AGENT_NETNS_NOT_FOUND' });
    await assert.rejects(dp.addPodToMesh(pod, [ip], join(dir, 'no-such-netns')), {
      code: 'AGENT_NETNS_OPEN',
    });
    assert.equal(cache.size, 0);
    assert.deepEqual(log, []);
  });

  it('a cached netns with the same inode is kept (the duplicate handle closed)', () => {
    const a = NetnsHandle.open(podNs.path);
    const b = NetnsHandle.open(podNs.path);
    const info = { name: 'p', namespace: 'ns', serviceAccount: 'default' };
    assert.equal(cache.upsert('u', info, a), a);
    assert.equal(cache.upsert('u', info, b), a);
    assert.equal(b.closed, true);
    cache.take('u')?.netns?.close();
    assert.equal(a.closed, true);
  });

  it('a stale netns (another inode, named before the cached one) never replaces the live one', async () => {
    nack = '';
    const ip2 = uniqueSubnet().host(5);
    const stale = new TestNetns();
    const live = new TestNetns();
    const handles: NetnsHandle[] = [];
    const pod2: V1Pod = { metadata: { name: 'p2', namespace: 'ns', uid: 'uid-dp-2' } };
    try {
      for (const ns of [stale, live]) ns.exec('ip', ['addr', 'add', `${ip2}/32`, 'dev', 'lo']);
      const staleSeen = process.hrtime.bigint();
      const liveSeen = process.hrtime.bigint();
      await dp.addPodToMesh(pod2, [ip2], live.path, { seenAt: liveSeen });
      log.length = 0;
      await assert.rejects(
        dp.addPodToMesh(pod2, [ip2], stale.path, { seenAt: staleSeen }),
        (err: Error & { code?: string; retryable?: boolean }) => {
          assert.equal(err.code, 'AGENT_NETNS_STALE');
          assert.equal(err.retryable, false);
          assert.match(err.message, /netns .* of pod ns\/p2 is older than the one it runs in/);
          return true;
        },
      );
      assert.deepEqual(log.splice(0), [], 'nothing sent to ztunnel, no annotation');
      assert.equal(run('ip', ['netns', 'exec', stale.name, 'iptables-save']).includes('ISTIO_'), false);
      const liveHandle = NetnsHandle.open(live.path);
      handles.push(liveHandle);
      assert.ok(cache.get('uid-dp-2')?.netns?.sameAs(liveHandle), 'the live netns stays cached');

      // At the cache itself: an older netns with another inode is refused and closed.
      const older = NetnsHandle.open(stale.path);
      const info = { name: 'p2', namespace: 'ns', serviceAccount: 'default' };
      assert.equal(cache.upsert('uid-dp-2', info, older, staleSeen), undefined);
      assert.equal(older.closed, true);
      assert.ok(cache.get('uid-dp-2')?.netns?.sameAs(liveHandle));
      // A newer one (a new sandbox) does replace it.
      const newer = NetnsHandle.open(stale.path);
      assert.equal(cache.upsert('uid-dp-2', info, newer, process.hrtime.bigint()), newer);
    } finally {
      await dp.removePodFromMesh(pod2, true).catch(() => {});
      for (const h of handles) h.close();
      stale.remove();
      live.remove();
      log.length = 0;
    }
  });

  for (const [what, status] of [
    ['status.podIPs different from the CNI IPs', (ip: string) => ({ podIP: ip, podIPs: [{ ip }] })],
    ['no status IPs', () => ({})],
  ] as const) {
    it(`probe entries added from the CNI IPs are removed with the pod (${what})`, async () => {
      nack = '';
      const cniIps = [uniqueSubnet().host(8), uniqueSubnet().host(9)];
      const other = uniqueSubnet().host(10);
      const ns3 = new TestNetns();
      const uid = `uid-dp-probe-${cniIps[0]}`;
      const pod3: V1Pod = { metadata: { name: 'p3', namespace: 'ns', uid } };
      const entriesOf = async () =>
        [...(await probes.entries())].filter(([, u]) => u === uid).map(([i]) => i);
      try {
        for (const a of cniIps) ns3.exec('ip', ['addr', 'add', `${a}/32`, 'dev', 'lo']);
        await dp.addPodToMesh(pod3, cniIps, ns3.path);
        assert.deepEqual((await entriesOf()).sort(), [...cniIps].sort());
        // The pod as the informer later sees it: its status names other IPs, or none.
        const seen: V1Pod = { ...pod3, status: status(other) };
        await dp.removePodFromMesh(seen, true);
        assert.deepEqual(await entriesOf(), [], 'no probe entry of the pod is left');
      } finally {
        for (const a of await entriesOf()) await probes.removePodIp(uid, a);
        ns3.remove();
        log.length = 0;
      }
    });
  }
});
