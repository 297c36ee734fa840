/**
 * ZDS across two real processes: this test is the node agent (ZdsServer), the node proxy is the
 * ztunnel fixture process. Pod netns fds travel over the real SEQPACKET socket; each pod proxy is a
 * real listener inside the pod netns, probed from here.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { Registry } from '../../../src/runtime/metrics.js';
import { listenInNetns, NetnsHandle } from '../../../src/sys/index.js';
import {
  type SnapshotPod,
  type WorkloadInfo,
  type WorkloadUid,
  workloadUid,
  ZdsServer,
} from '../../../src/zds/index.js';
import { TestNetns } from '../../helpers/netns.js';
import { eventually, listening } from '../../zds/fixtures/raw-peer.js';
import { ZtunnelProcess } from '../../zds/fixtures/ztunnel-process.js';

const PORT = 15008;
const info = (name: string): WorkloadInfo => ({ name, namespace: 'default', serviceAccount: 'default' });
const started = (uid: string) =>
  new RegExp(
    `INFO ztunnel::inpod::statemanager: pod WorkloadUid\\("${uid}"\\) received netns, starting proxy`,
  );
const DELETED = /INFO ztunnel::inpod::statemanager: pod delete request, draining proxy/;
const SNAPSHOT = /INFO ztunnel::inpod::statemanager: pod received snapshot sent/;

interface Pod {
  uid: WorkloadUid;
  ns: TestNetns;
  handle: NetnsHandle;
}

describe('ZDS between the agent and a ztunnel process', () => {
  let dir: string;
  let uds: string;
  let snapshot: SnapshotPod[];
  let registry: Registry;
  let server: ZdsServer | undefined;
  let procs: ZtunnelProcess[];
  let pods: Pod[];

  const listen = () => {
    server = ZdsServer.listen({ path: uds, pods: { snapshot: () => snapshot }, registry });
    return server;
  };
  const pod = (name: string): Pod => {
    const ns = new TestNetns();
    const p = { uid: workloadUid(`uid-${name}`), ns, handle: NetnsHandle.open(ns.path) };
    pods.push(p);
    return p;
  };
  const ztunnel = (): ZtunnelProcess => {
    const z = new ZtunnelProcess(uds);
    procs.push(z);
    return z;
  };
  const connected = async (s: ZdsServer, n: number) => {
    await eventually(`${n} ztunnel connection(s)`, () => s.connectionCount === n);
  };
  const gauge = async () => (await registry.getSingleMetric('ztunnel_connected')!.get()).values[0]?.value;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ambit-zds-'));
    uds = join(dir, 'ztunnel.sock');
    snapshot = [];
    registry = new Registry();
    procs = [];
    pods = [];
  });
  afterEach(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    server?.close();
    server = undefined;
    for (const p of pods) {
      p.handle.close();
      p.ns.remove();
    }
    rmSync(dir, { recursive: true, force: true });
  });
  after(() => server?.close());

  it('prints the in-pod start-up lines, then Add is acked and Del drains the pod proxy', async () => {
    writeFileSync(uds, 'stale'); // a leftover file from an earlier agent is replaced
    const s = listen();
    assert.equal(statSync(uds).mode & 0o777, 0o600);
    const a = pod('a');
    const z = ztunnel();
    await z.waitFor(SNAPSHOT);
    await connected(s, 1);
    assert.equal(await gauge(), 1);
    for (const line of [
      'inpod_enabled: true',
      `inpod_uds: ${uds}`,
      'inpod_port_reuse: true',
      'inpod_mark: 1337',
    ]) {
      assert.ok(z.lines.includes(line), `start-up line ${line}`);
    }
    assert.equal(z.count(/INFO ztunnel::inpod::workloadmanager: handling new stream/), 1);

    await s.addWorkload(a.uid, info('a'), a.ns.path);
    assert.equal(z.count(started(a.uid)), 1);
    assert.match(
      z.lines.find((l) => started(a.uid).test(l))!,
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z {2}INFO /,
    );
    assert.ok(await listening(a.handle, PORT));

    await s.delWorkload(a.uid);
    assert.equal(z.count(DELETED), 1);
    assert.equal(await listening(a.handle, PORT), false);
    assert.equal(await z.stop(), 0);
    await connected(s, 0);
    assert.equal(await gauge(), 0);
  });

  it('replays the snapshot: Add with the netns fd for known pods, Keep for the rest, then SnapshotSent', async () => {
    const a = pod('a');
    snapshot = [
      { uid: a.uid, info: info('a'), netns: a.handle },
      { uid: workloadUid('uid-lost'), info: info('lost'), netns: null },
    ];
    listen();
    const z = ztunnel();
    await z.waitFor(/fixture: ready=true/);
    assert.equal(z.count(started(a.uid)), 1);
    assert.equal(z.count(/pod WorkloadUid\("uid-lost"\) keep received/), 1);
    assert.equal(z.count(SNAPSHOT), 1);
    const order = ['received netns', 'keep received', 'received snapshot sent'].map((m) =>
      z.lines.findIndex((l) => l.includes(m)),
    );
    assert.deepEqual(
      [...order].sort((x, y) => x - y),
      order,
      'Add, Keep, SnapshotSent in that order',
    );
    assert.ok(await listening(a.handle, PORT));
  });

  it('on reconnect, the second snapshot keeps what it names and stops what it does not', async () => {
    const a = pod('a');
    const b = pod('b');
    snapshot = [
      { uid: a.uid, info: info('a'), netns: a.handle },
      { uid: b.uid, info: info('b'), netns: b.ns.path },
    ];
    const first = listen();
    const z = ztunnel();
    await z.waitFor(SNAPSHOT);
    assert.ok(await listening(a.handle, PORT));
    assert.ok(await listening(b.handle, PORT));

    // The agent restarts and lost a's netns: a is kept, b is not named at all.
    first.close();
    snapshot = [{ uid: a.uid, info: info('a'), netns: null }];
    listen();
    await z.waitFor(SNAPSHOT, 2);
    assert.equal(z.count(/handling new stream/), 2);
    assert.equal(z.count(started(a.uid)), 1, 'a was not restarted');
    assert.ok(await listening(a.handle, PORT));
    assert.equal(await listening(b.handle, PORT), false);
  });

  it('with two proxies: adds go to the newest, deletes to both, the older takes over when the newer leaves', async () => {
    const s = listen();
    const older = ztunnel();
    await older.waitFor(SNAPSHOT);
    const newer = ztunnel();
    await newer.waitFor(SNAPSHOT);
    await connected(s, 2);
    assert.equal(await gauge(), 2);

    const c = pod('c');
    await s.addWorkload(c.uid, info('c'), c.handle);
    assert.equal(newer.count(started(c.uid)), 1);
    assert.equal(older.count(started(c.uid)), 0);
    await s.delWorkload(c.uid);
    assert.equal(newer.count(DELETED), 1);
    assert.equal(older.count(DELETED), 1);

    assert.equal(await newer.stop(), 0);
    await connected(s, 1);
    const d = pod('d');
    await s.addWorkload(d.uid, info('d'), d.handle);
    assert.equal(older.count(started(d.uid)), 1);
    assert.ok(await listening(d.handle, PORT));
  });

  it('pods handed to a proxy that disconnects are re-sent to the newest remaining one', async () => {
    const s = listen();
    const older = ztunnel();
    await older.waitFor(SNAPSHOT);
    const newer = ztunnel();
    await newer.waitFor(SNAPSHOT);
    await connected(s, 2);

    const c = pod('c');
    const d = pod('d');
    // The agent's cache knows both pods (with their netns), as after a CNI ADD each.
    snapshot = [
      { uid: c.uid, info: info('c'), netns: c.handle },
      { uid: d.uid, info: info('d'), netns: d.handle },
    ];
    await s.addWorkload(c.uid, info('c'), c.handle);
    await s.addWorkload(d.uid, info('d'), d.handle);
    assert.equal(
      older.count(started(c.uid)) + older.count(started(d.uid)),
      0,
      'new pods go to the newest only',
    );

    newer.child.kill('SIGKILL');
    await connected(s, 1);
    await older.waitFor(started(c.uid));
    await older.waitFor(started(d.uid));
    await eventually(
      'c and d proxied by the remaining ztunnel',
      async () => (await listening(c.handle, PORT)) && (await listening(d.handle, PORT)),
    );
  });

  it('NACKs an Add whose proxy cannot bind, retries it, and succeeds once the port is free', async () => {
    const s = listen();
    const z = ztunnel();
    await z.waitFor(/fixture: ready=true/);
    const e = pod('e');
    const blocker: Server = await listenInNetns(e.handle, { port: PORT });
    try {
      await assert.rejects(
        s.addWorkload(e.uid, info('e'), e.handle),
        (err: Error & { code?: string; retryable?: boolean }) => {
          assert.equal(err.code, 'ZDS_NACK');
          assert.equal(err.retryable, true);
          assert.match(err.message, /failure to start proxy : .*Address already in use/);
          return true;
        },
      );
      await z.waitFor(/fixture: ready=false/);
      await z.waitFor(/retrying workload failed/);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
    await z.waitFor(/fixture: ready=true/, 2);
    assert.ok(await listening(e.handle, PORT));
    assert.equal(z.count(started(e.uid)), 1, 'the retry is not a new Add');
  });

  it('with no proxy connected, Add fails with a retryable error and Del succeeds', async () => {
    const s = listen();
    const a = pod('a');
    await assert.rejects(
      s.addWorkload(a.uid, info('a'), a.handle),
      (err: Error & { code?: string; retryable?: boolean }) =>
        err.code === 'ZDS_NO_CONNECTION' && err.retryable === true,
    );
    await s.delWorkload(a.uid);
  });
});
