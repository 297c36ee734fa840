/**
 * `ambit doctor` when ztunnel proxies a pod in a netns that is not the pod's current one (a stale
 * sandbox's): ztunnel's config dump says Up, and real listeners exist, but in the other netns. The
 * ztunnel and listener checks must both fail and name the two namespaces.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import type { Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { checkListeners } from '../../../src/doctor/checks/listeners.js';
import { checkZtunnel } from '../../../src/doctor/checks/ztunnel.js';
import type { DoctorContext } from '../../../src/doctor/context.js';
import type { DoctorTarget } from '../../../src/doctor/types.js';
import { listenInNetns, NetnsHandle } from '../../../src/sys/index.js';
import type { ConfigDump } from '../../../src/ztunnel/admin/config-dump.js';
import { TestNetns } from '../../helpers/netns.js';

const UID = 'uid-doctor-stale';
const inode = (path: string) => Number(statSync(path, { bigint: true }).ino);

describe('doctor: listeners in another netns than the pod current one', () => {
  const current = new TestNetns();
  const stale = new TestNetns();
  const servers: Server[] = [];
  let ctx: DoctorContext;

  before(async () => {
    // ztunnel's pod listeners, opened (by this process, standing in for ztunnel) in the stale netns.
    const h = NetnsHandle.open(stale.path);
    try {
      for (const port of [15001, 15006, 15008]) servers.push(await listenInNetns(h, { port }));
      servers.push(await listenInNetns(h, { port: 15080, host: '127.0.0.1' }));
    } finally {
      h.close();
    }
    const target: DoctorTarget = {
      namespace: 'mesh',
      name: 'web',
      uid: UID,
      podNetns: current.path,
      nodeNetns: null,
      hostNetns: null,
      admin: { host: '127.0.0.1', port: 15000 },
      backend: 'iptables',
      inbound: 'tproxy',
      dnsCapture: false,
      probe: { host: '169.254.7.127', port: 15021 },
      hints: {
        inPod: `ip netns exec ${current.name}`,
        ztunnelLogs: 'ztunnel log',
        agentLogs: 'agent log',
        netnsArg: current.path,
      },
    };
    const dump = {
      workloadState: {
        [UID]: {
          state: 'Up',
          info: { name: 'web', namespace: 'mesh', serviceAccount: 'default' },
          netnsInode: inode(stale.path),
        },
      },
    } as unknown as ConfigDump;
    ctx = { target, dump, ztunnelPid: process.pid };
  });

  after(async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    current.remove();
    stale.remove();
  });

  it('the ztunnel check fails: Up, but in another netns', () => {
    const r = checkZtunnel(ctx);
    assert.equal(r.status, 'fail', JSON.stringify(r));
    assert.match(r.detail, new RegExp(`netns inode ${inode(stale.path)}.*inode ${inode(current.path)}`));
    assert.match(r.cause!, /stale/);
  });

  it('the listeners check fails with the cause: the listeners are in another netns', async () => {
    const r = await checkListeners(ctx);
    assert.equal(r.status, 'fail', JSON.stringify(r));
    assert.match(r.detail, /15001 missing/);
    assert.match(
      r.cause!,
      new RegExp(
        `ztunnel's listeners for this pod are in another network namespace \\(inode ${inode(stale.path)}\\), not the pod's current one \\(inode ${inode(current.path)}\\)`,
      ),
    );
  });

  it('with the dump naming the current netns, both checks pass', async () => {
    const dump = ctx.dump!;
    const entry = dump.workloadState[UID]! as { netnsInode?: number };
    const saved = entry.netnsInode;
    entry.netnsInode = inode(current.path);
    const h = NetnsHandle.open(current.path);
    const here: Server[] = [];
    try {
      for (const port of [15001, 15006, 15008]) here.push(await listenInNetns(h, { port }));
      here.push(await listenInNetns(h, { port: 15080, host: '127.0.0.1' }));
      assert.equal(checkZtunnel(ctx).status, 'pass');
      const r = await checkListeners(ctx);
      assert.equal(r.status, 'pass', JSON.stringify(r));
    } finally {
      h.close();
      entry.netnsInode = saved;
      await Promise.all(here.map((s) => new Promise((r) => s.close(r))));
    }
  });
});
