/**
 * 10,000 random and mutated datagrams (some with fds: a netns, /dev/null, or two at once) to each
 * end of ZDS. Each must be answered (a reply, or the connection dropped), no fd may leak, and the
 * end must then serve a well-formed peer.
 */
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setLogLevel } from '../../../src/runtime/log.js';
import { connectSeqpacket, listenInNetns, NetnsHandle, seqpacketPair } from '../../../src/sys/index.js';
import {
  ack,
  decodeRequest,
  decodeResponse,
  encodeHello,
  encodeRequest,
  encodeResponse,
  nack,
  type WorkloadInfo,
  workloadUid,
  ZdsServer,
} from '../../../src/zds/index.js';
import { InPodStateManager, WorkloadProxyManager } from '../../../src/ztunnel/inpod/index.js';
import { TestNetns } from '../../helpers/netns.js';
import { ListenerProxyFactory } from '../../zds/fixtures/listener-proxy.js';
import { ownFdCount, RawPeer } from '../../zds/fixtures/raw-peer.js';

const DATAGRAMS = 10_000;
const info: WorkloadInfo = { name: 'app', namespace: 'default', serviceAccount: 'sa' };

/** xorshift32: reproducible input, the seed is printed in failure messages. */
function prng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

function fuzzDatagram(rand: (n: number) => number, templates: Uint8Array[]): Buffer {
  if (rand(3) === 0) {
    const len = 1 + rand(48);
    return Buffer.from(Array.from({ length: len }, () => rand(256)));
  }
  const bytes = [...templates[rand(templates.length)]!];
  for (let ops = 1 + rand(3); ops > 0; ops--) {
    const at = rand(bytes.length + 1);
    switch (rand(5)) {
      case 0:
        if (at < bytes.length) bytes[at]! ^= 1 << rand(8);
        break;
      case 1:
        if (at < bytes.length) bytes[at] = rand(256);
        break;
      case 2:
        bytes.length = Math.max(1, at);
        break;
      case 3:
        bytes.splice(at, 0, rand(256));
        break;
      default:
        bytes.push(...bytes.slice(at, at + 1 + rand(8)));
    }
  }
  return Buffer.from(bytes);
}

describe('ZDS robustness', () => {
  const seed = Number(process.env['ZDS_FUZZ_SEED'] ?? Date.now() % 2 ** 31);
  // Printed up front so any failure, a timeout included, can be replayed with ZDS_FUZZ_SEED.
  process.stdout.write(`# ZDS_FUZZ_SEED=${seed}\n`);
  let ns: TestNetns;
  let dir: string;
  before(async () => {
    ns = new TestNetns();
    // The addon opens its home-netns fd on first use: allocate it before fds are counted.
    const warm = NetnsHandle.open(ns.path);
    const server = await listenInNetns(warm, { port: 0 });
    await new Promise((r) => server.close(r));
    warm.close();
    dir = mkdtempSync(join(tmpdir(), 'ambit-zds-fuzz-'));
    setLogLevel('error', 'ambit::zds');
    setLogLevel('error', 'ztunnel::inpod');
  });
  after(() => {
    setLogLevel('info', 'ambit::zds');
    setLogLevel('info', 'ztunnel::inpod');
    ns.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Opens fds to attach: none mostly, else the pod netns, /dev/null, or both. */
  const fdsFor = (rand: (n: number) => number): number[] => {
    switch (rand(6)) {
      case 0:
        return [openSync(ns.path, 'r')];
      case 1:
        return [openSync('/dev/null', 'r')];
      case 2:
        return [openSync(ns.path, 'r'), openSync('/dev/null', 'r')];
      default:
        return [];
    }
  };
  const closeAll = (fds: number[]) => {
    for (const fd of fds) closeSync(fd);
  };

  it(`the proxy side answers ${DATAGRAMS} bad datagrams with a reply or a drop, leaks nothing, then serves a good agent`, async () => {
    const rand = prng(seed);
    const templates = [
      encodeRequest({ kind: 'add', uid: workloadUid('uid-0'), workloadInfo: info }),
      encodeRequest({ kind: 'keep', uid: workloadUid('uid-1') }),
      encodeRequest({ kind: 'del', uid: workloadUid('uid-0') }),
      encodeRequest({ kind: 'snapshotSent' }),
    ];
    const sm = new InPodStateManager(new ListenerProxyFactory({ port: 0, reusePort: false }));
    const manager = new WorkloadProxyManager(sm, { uds: '/nonexistent', retryIntervalMs: 3_600_000 });
    const fdsBefore = ownFdCount();
    let agent: RawPeer | undefined;
    let session: Promise<unknown> | undefined;
    let drops = 0;
    let nacks = 0;
    for (let i = 0; i < DATAGRAMS; i++) {
      if (!agent) {
        const [ours, theirs] = seqpacketPair();
        agent = new RawPeer(theirs);
        session = manager.runSession(ours);
        assert.deepEqual(await agent.next(), Buffer.from([0x08, 0x01]), 'hello');
      }
      const data = fuzzDatagram(rand, templates);
      const fds = fdsFor(rand);
      await agent.send(data, fds);
      closeAll(fds);
      const reply = await agent.next();
      if (reply === 'closed') {
        drops++;
      } else {
        const r = decodeResponse(reply);
        assert.ok(r.ok && r.value.kind === 'ack', `seed ${seed}: reply to datagram ${i} is an Ack`);
        if (r.value.error === '') continue;
        nacks++;
        if (/^failure to start proxy/.test(r.value.error)) continue;
        assert.equal(await agent.next(), 'closed', `seed ${seed}: "${r.value.error}" is followed by a drop`);
        drops++;
      }
      agent.close();
      await session;
      agent = undefined;
    }
    agent?.close();
    await session;
    assert.ok(
      nacks > DATAGRAMS / 4 && drops > DATAGRAMS / 4,
      `seed ${seed}: mostly refused (${nacks} NACKs, ${drops} drops)`,
    );

    // A well-formed agent is served as usual.
    const [ours, theirs] = seqpacketPair();
    const good = new RawPeer(theirs);
    const last = manager.runSession(ours);
    await good.next();
    await good.send(encodeRequest({ kind: 'snapshotSent' }));
    assert.deepEqual(await good.next(), Buffer.from(encodeResponse(ack())));
    const fd = openSync(ns.path, 'r');
    await good.send(encodeRequest({ kind: 'add', uid: workloadUid('good'), workloadInfo: info }), [fd]);
    closeSync(fd);
    assert.deepEqual(await good.next(), Buffer.from(encodeResponse(ack())));
    assert.equal(sm.ready(), true);
    good.close();
    await last;
    await sm.stopAll('immediate');
    assert.equal(ownFdCount(), fdsBefore, `seed ${seed}: no fd leaked`);
  });

  it(`the agent side drops ${DATAGRAMS} bad hellos/acks, leaks nothing, then serves a good proxy`, async () => {
    const rand = prng(seed ^ 0x5a5a5a5a);
    const handle = NetnsHandle.open(ns.path);
    const fdsBefore = ownFdCount();
    const uds = join(dir, 'ztunnel.sock');
    const pod = { uid: workloadUid('uid-a'), info, netns: ns.path };
    const server = ZdsServer.listen({ path: uds, pods: { snapshot: () => [pod] } });
    const templates = [encodeHello({ version: 1 }), encodeResponse(ack()), encodeResponse(nack('no'))];
    let proxy: RawPeer | undefined;
    /** What the server waits for on the current connection. */
    let stage: 'hello' | 'ack-add' | 'ack-snapshot' | 'idle' = 'hello';
    let drops = 0;
    try {
      for (let i = 0; i < DATAGRAMS; i++) {
        if (!proxy) {
          proxy = new RawPeer(connectSeqpacket(uds));
          stage = 'hello';
        }
        const data = fuzzDatagram(rand, templates);
        const fds = fdsFor(rand);
        const snapshotDone = new Promise<'snapshotSent'>((resolve) =>
          server.once('snapshotSent', () => resolve('snapshotSent')),
        );
        await proxy.send(data, fds);
        closeAll(fds);
        const answer = await Promise.race([proxy.nextRaw(), snapshotDone]);
        server.removeAllListeners('snapshotSent');
        if (answer === 'closed') {
          drops++;
          proxy = undefined;
          continue;
        }
        if (answer === 'snapshotSent') {
          assert.equal(
            stage,
            'ack-snapshot',
            `seed ${seed}: only an ack of SnapshotSent completes the snapshot`,
          );
          stage = 'idle';
          continue;
        }
        closeAll(answer.fds);
        const req = decodeRequest(answer.data);
        assert.ok(req.ok, `seed ${seed}: the server sends well-formed requests`);
        assert.ok(
          stage === 'hello' || stage === 'ack-add',
          `seed ${seed}: no request expected in stage ${stage}`,
        );
        if (stage === 'hello') {
          assert.equal(req.value.kind, 'add');
          assert.equal(answer.fds.length, 1, 'the netns fd rides with the Add');
          stage = 'ack-add';
        } else {
          assert.equal(req.value.kind, 'snapshotSent');
          stage = 'ack-snapshot';
        }
      }
      proxy?.close();
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(drops > DATAGRAMS / 2, `seed ${seed}: mostly dropped (${drops})`);
      assert.equal(server.connectionCount, 0);

      // A well-formed proxy gets the snapshot and then a new pod.
      const good = new RawPeer(connectSeqpacket(uds));
      await good.send(encodeHello({ version: 1 }));
      const add = await good.nextRaw();
      assert.ok(add !== 'closed' && add.fds.length === 1);
      closeAll(add.fds);
      await good.send(encodeResponse(ack()));
      const snap = await good.next();
      assert.ok(snap !== 'closed' && decodeRequest(snap).ok);
      await good.send(encodeResponse(ack()));
      const added = server.addWorkload(workloadUid('uid-b'), info, handle);
      const next = await good.next();
      assert.ok(next !== 'closed');
      const req = decodeRequest(next);
      assert.ok(req.ok && req.value.kind === 'add' && req.value.uid === 'uid-b');
      await good.send(encodeResponse(ack()));
      await added;
      good.close();
    } finally {
      server.close();
      proxy?.close();
    }
    await new Promise((r) => setTimeout(r, 50));
    handle.close();
    assert.equal(ownFdCount(), fdsBefore - 1, `seed ${seed}: no fd leaked`);
  });
});
