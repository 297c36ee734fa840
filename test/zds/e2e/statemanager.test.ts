/**
 * The in-pod state manager and the ZDS client session, in-process, with real network namespaces
 * and real listeners (reference/ztunnel.md §1.4-1.7 unit scenarios).
 */
import assert from 'node:assert/strict';
import { openSync } from 'node:fs';
import type { Server } from 'node:net';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { listenInNetns, NetnsHandle, seqpacketPair } from '../../../src/sys/index.js';
import { decodeResponse, encodeRequest, type WorkloadInfo, workloadUid } from '../../../src/zds/messages.js';
import type { RequestPacket } from '../../../src/zds/packet.js';
import { InPodStateManager, WorkloadProxyManager } from '../../../src/ztunnel/inpod/index.js';
import { TestNetns } from '../../helpers/netns.js';
import { ListenerProxyFactory } from '../../zds/fixtures/listener-proxy.js';
import { eventually, listening, ownFdCount, RawPeer } from '../../zds/fixtures/raw-peer.js';

const PORT = 15008;
const info: WorkloadInfo = { name: 'app', namespace: 'default', serviceAccount: 'default' };
const uid = workloadUid('uid-0');

let made: TestNetns[] = [];
let handles: NetnsHandle[] = [];
function removeNetns(): void {
  for (const h of handles) h.close();
  for (const ns of made) ns.remove();
  handles = [];
  made = [];
}
after(removeNetns);

function netns(): { ns: TestNetns; handle: NetnsHandle } {
  const ns = new TestNetns();
  made.push(ns);
  const handle = NetnsHandle.open(ns.path);
  handles.push(handle);
  return { ns, handle };
}

/** An Add as the agent sends it, with a fresh fd on the netns; `null` info = an Add without workload_info. */
const add = (ns: TestNetns, u = uid, i: WorkloadInfo | null = info): RequestPacket => ({
  request: { kind: 'add', uid: u, workloadInfo: i ?? undefined },
  netnsFd: openSync(ns.path, 'r'),
});
const del = (u = uid): RequestPacket => ({ request: { kind: 'del', uid: u } });
const keep = (u = uid): RequestPacket => ({ request: { kind: 'keep', uid: u } });
const snapshot: RequestPacket = { request: { kind: 'snapshotSent' } };

/** Occupies the proxy's port inside the netns (no SO_REUSEPORT), like upstream's create_proxy_conflict. */
async function conflict(handle: NetnsHandle): Promise<Server> {
  return listenInNetns(handle, { port: PORT });
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: Error & { code?: string }) => err.code === code);
}

describe('in-pod state manager', () => {
  before(async () => {
    // One-time lazy allocations (addon, libuv handles) must not count as leaks in the first test.
    const { handle } = netns();
    const server = await conflict(handle);
    await listening(handle, PORT);
    await new Promise((r) => server.close(r));
    removeNetns();
  });
  let factory: ListenerProxyFactory;
  let sm: InPodStateManager;
  let fdsBefore: number;
  beforeEach(() => {
    fdsBefore = ownFdCount();
    factory = new ListenerProxyFactory({ port: PORT, reusePort: false });
    sm = new InPodStateManager(factory);
    sm.resetConnection();
  });
  afterEach(async () => {
    await sm.stopAll('immediate');
    removeNetns();
    assert.equal(ownFdCount(), fdsBefore, 'no fd leaked by the state manager');
  });

  it('add starts a proxy listening inside the pod netns', async () => {
    const { ns, handle } = netns();
    await sm.process(add(ns));
    assert.equal(factory.started, 1);
    assert.ok(await listening(handle, PORT));
    assert.deepEqual(sm.workloadState(), {
      [uid]: { state: 'Up', info, netnsInode: Number(handle.identity.inode) },
    });
  });

  it('a duplicate add for the same netns keeps one proxy', async () => {
    const { ns } = netns();
    await sm.process(add(ns));
    await sm.process(add(ns));
    assert.equal(factory.started, 1);
    assert.equal(factory.active, 1);
  });

  it('a failed add is pending (not ready) and the retry succeeds once the conflict is gone', async () => {
    const { ns, handle } = netns();
    const blocker = await conflict(handle);
    await rejectsWith(sm.process(add(ns)), 'ZDS_PROXY_START');
    await sm.process(snapshot);
    assert.equal(sm.ready(), false);
    assert.deepEqual(sm.pendingUids(), [uid]);
    assert.equal(sm.workloadState()[uid]?.state, 'Pending');
    await sm.retryPending();
    assert.deepEqual(sm.pendingUids(), [uid], 'still taken: still pending');
    await new Promise<void>((r) => blocker.close(() => r()));
    await sm.retryPending();
    assert.deepEqual(sm.pendingUids(), []);
    assert.equal(sm.ready(), true);
    assert.ok(await listening(handle, PORT));
  });

  it('add fails, then re-added with a new netns: the running proxy survives the retry (istio#52858)', async () => {
    const a = netns();
    const b = netns();
    const blocker = await conflict(a.handle);
    await rejectsWith(sm.process(add(a.ns)), 'ZDS_PROXY_START');
    await sm.process(add(b.ns));
    assert.deepEqual(sm.pendingUids(), []);
    await sm.retryPending();
    assert.equal(factory.started, 1);
    assert.equal(factory.active, 1);
    assert.ok(await listening(b.handle, PORT));
    blocker.close();
  });

  it('a delete after a failed add clears the pending entry', async () => {
    const { ns, handle } = netns();
    const blocker = await conflict(handle);
    await sm.process(snapshot);
    await rejectsWith(sm.process(add(ns)), 'ZDS_PROXY_START');
    await sm.process(del());
    assert.deepEqual(sm.pendingUids(), []);
    assert.equal(sm.ready(), true);
    blocker.close();
  });

  it('a delete before the snapshot unnames the pod and drops it from pending; SnapshotSent stops it', async () => {
    const a = netns();
    const b = netns();
    const blocker = await conflict(b.handle);
    await sm.process(add(a.ns));
    await rejectsWith(sm.process(add(b.ns, workloadUid('uid-1'))), 'ZDS_PROXY_START');
    await sm.process(del());
    await sm.process(del(workloadUid('uid-1')));
    assert.deepEqual(sm.pendingUids(), []);
    assert.equal(factory.active, 1, 'not stopped before the snapshot ends');
    await sm.process(snapshot);
    assert.equal(factory.active, 0);
    assert.equal(await listening(a.handle, PORT), false);
    blocker.close();
  });

  it('add, del, add starts twice and leaves one proxy', async () => {
    const { ns, handle } = netns();
    await sm.process(snapshot);
    await sm.process(add(ns));
    await sm.process(del());
    assert.equal(await listening(handle, PORT), false);
    await sm.process(add(ns));
    assert.equal(factory.started, 2);
    assert.equal(factory.active, 1);
    assert.ok(await listening(handle, PORT));
  });

  it('add, snapshot, reconnect, keep, snapshot: still one start', async () => {
    const { ns, handle } = netns();
    await sm.process(add(ns));
    await sm.process(snapshot);
    sm.resetConnection();
    assert.equal(sm.ready(), false, 'not ready until the new snapshot');
    await sm.process(keep());
    await sm.process(snapshot);
    assert.equal(factory.started, 1);
    assert.equal(factory.active, 1);
    assert.equal(sm.ready(), true);
    assert.ok(await listening(handle, PORT));
  });

  it('add with a new netns for the same uid replaces the proxy: two starts, one active', async () => {
    const a = netns();
    const b = netns();
    await sm.process(add(a.ns));
    await sm.process(add(b.ns));
    assert.equal(factory.started, 2);
    assert.equal(factory.active, 1);
    assert.equal(await listening(a.handle, PORT), false);
    assert.ok(await listening(b.handle, PORT));
  });

  it('rejects an Add without workload info as a protocol error and closes its fd', async () => {
    const { ns } = netns();
    await rejectsWith(sm.process(add(ns, uid, null)), 'ZDS_PROTOCOL');
    assert.equal(factory.started, 0);
  });

  it('a second connection whose snapshot omits a pod stops that pod', async () => {
    const a = netns();
    const b = netns();
    await sm.process(add(a.ns));
    await sm.process(add(b.ns, workloadUid('uid-1')));
    await sm.process(snapshot);
    sm.resetConnection();
    await sm.process(add(b.ns, workloadUid('uid-1')));
    await sm.process(snapshot);
    assert.equal(factory.active, 1);
    assert.equal(await listening(a.handle, PORT), false);
    assert.ok(await listening(b.handle, PORT));
  });

  it('add then del: no active proxy and ready', async () => {
    const { ns } = netns();
    await sm.process(snapshot);
    await sm.process(add(ns));
    await sm.process(del());
    assert.equal(factory.active, 0);
    assert.equal(sm.activeCount, 0);
    assert.equal(sm.ready(), true);
  });

  it('Keep after the snapshot and a second SnapshotSent are protocol errors', async () => {
    await sm.process(snapshot);
    await rejectsWith(sm.process(keep()), 'ZDS_PROTOCOL');
    await rejectsWith(sm.process(snapshot), 'ZDS_PROTOCOL');
  });
});

describe('ZDS client session', () => {
  const nackText = (b: Buffer | 'closed') => {
    assert.notEqual(b, 'closed');
    const r = decodeResponse(b as Buffer);
    assert.ok(r.ok && r.value.kind === 'ack');
    return r.value.error;
  };

  it('reports an announce error when the hello cannot be sent', async () => {
    const [ours, theirs] = seqpacketPair();
    theirs.close();
    await new Promise((r) => setTimeout(r, 10));
    const manager = new WorkloadProxyManager(
      new InPodStateManager(new ListenerProxyFactory({ port: PORT, reusePort: false })),
      {
        uds: '/nonexistent',
      },
    );
    const end = await manager.runSession(ours);
    assert.equal(end.kind, 'announceError');
  });

  it('NACKs a start failure, keeps the connection, retries until it succeeds, then is ready', async () => {
    const { ns, handle } = netns();
    const blocker = await conflict(handle);
    const sm = new InPodStateManager(new ListenerProxyFactory({ port: PORT, reusePort: false }));
    const manager = new WorkloadProxyManager(sm, { uds: '/nonexistent', retryIntervalMs: 50 });
    const [ours, theirs] = seqpacketPair();
    const agent = new RawPeer(theirs);
    const session = manager.runSession(ours);
    try {
      assert.equal(Buffer.from((await agent.next()) as Buffer).toString('hex'), '0801');
      await agent.send(encodeRequest({ kind: 'snapshotSent' }));
      assert.equal(nackText(await agent.next()), '');
      const fd = openSync(ns.path, 'r');
      await agent.send(encodeRequest({ kind: 'add', uid, workloadInfo: info }), [fd]);
      assert.match(nackText(await agent.next()), /^failure to start proxy : /);
      assert.equal(sm.ready(), false);
      await new Promise<void>((r) => blocker.close(() => r()));
      await eventually('the retry to start the proxy', () => sm.ready());
      assert.ok(await listening(handle, PORT));
      // Still the same connection: a Del is answered.
      await agent.send(encodeRequest({ kind: 'del', uid }));
      assert.equal(nackText(await agent.next()), '');
      assert.equal(await listening(handle, PORT), false);
    } finally {
      agent.close();
      await session;
      await sm.stopAll('immediate');
    }
  });

  it('a protocol error is NACKed and the connection dropped, keeping running proxies', async () => {
    const { ns, handle } = netns();
    const sm = new InPodStateManager(new ListenerProxyFactory({ port: PORT, reusePort: false }));
    const manager = new WorkloadProxyManager(sm, { uds: '/nonexistent' });
    const [ours, theirs] = seqpacketPair();
    const agent = new RawPeer(theirs);
    const session = manager.runSession(ours);
    try {
      await agent.next();
      await agent.send(encodeRequest({ kind: 'add', uid, workloadInfo: info }), [openSync(ns.path, 'r')]);
      assert.equal(nackText(await agent.next()), '');
      await agent.send(encodeRequest({ kind: 'snapshotSent' }));
      assert.equal(nackText(await agent.next()), '');
      await agent.send(encodeRequest({ kind: 'snapshotSent' }));
      assert.match(nackText(await agent.next()), /^failure to process message : /);
      assert.equal(await agent.next(), 'closed');
      const end = await session;
      assert.equal(end.kind, 'dropped');
      assert.equal(sm.ready(), false, 'not ready while disconnected');
      assert.ok(await listening(handle, PORT), 'the pod proxy keeps running');
    } finally {
      agent.close();
      await sm.stopAll('immediate');
    }
  });

  it('garbage is NACKed as unreadable and the connection dropped; a reconnect clears the retry queue', async () => {
    const { ns, handle } = netns();
    const blocker = await conflict(handle);
    const sm = new InPodStateManager(new ListenerProxyFactory({ port: PORT, reusePort: false }));
    const manager = new WorkloadProxyManager(sm, { uds: '/nonexistent', retryIntervalMs: 60_000 });
    const [ours, theirs] = seqpacketPair();
    const agent = new RawPeer(theirs);
    const session = manager.runSession(ours);
    try {
      await agent.next();
      await agent.send(encodeRequest({ kind: 'add', uid, workloadInfo: info }), [openSync(ns.path, 'r')]);
      assert.match(nackText(await agent.next()), /^failure to start proxy/);
      assert.deepEqual(sm.pendingUids(), [uid]);
      await agent.send(Buffer.from([0xff, 0xff, 0xff]));
      assert.match(nackText(await agent.next()), /^failure to read message : /);
      assert.equal(await agent.next(), 'closed');
      await session;
      assert.deepEqual(sm.pendingUids(), [], 'the agent re-sends pending pods in its next snapshot');
    } finally {
      agent.close();
      blocker.close();
      await sm.stopAll('immediate');
    }
  });
});
