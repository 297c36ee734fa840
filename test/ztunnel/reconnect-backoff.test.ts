/**
 * ztunnel's reconnect schedule to the node agent: 10 ms doubling to the 15 s cap, never above it,
 * reset once a connection reached ready. The manager's waits are recorded through its `sleep`
 * hook (no wall-clock timing), against a missing socket and against an agent that hangs up at once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SeqpacketServer } from '../../src/sys/index.js';
import { ReconnectBackoff } from '../../src/ztunnel/inpod/backoff.js';
import { InPodStateManager, WorkloadProxyManager } from '../../src/ztunnel/inpod/index.js';

const EXPECTED = [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 15000, 15000, 15000, 15000, 15000];

const noProxies = {
  start: async () => {
    throw new Error('no pods in this test');
  },
};

/** Runs a manager against `uds` until it asked for `n` waits; returns them. */
async function waits(uds: string, n: number): Promise<number[]> {
  const asked: number[] = [];
  let manager: WorkloadProxyManager | undefined;
  let done: () => void;
  const enough = new Promise<void>((r) => {
    done = r;
  });
  manager = new WorkloadProxyManager(new InPodStateManager(noProxies), {
    uds,
    sleep: async (ms) => {
      asked.push(ms);
      if (asked.length === n) done();
      // Yield so a session's socket events run between attempts; never a real wait.
      await new Promise((r) => setImmediate(r));
    },
  });
  manager.start();
  await enough;
  await manager.stop();
  manager = undefined;
  return asked.slice(0, n);
}

describe('ztunnel reconnect back-off to the node agent', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-backoff-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('the schedule doubles from 10 ms to the 15 s cap and stays there; reset starts over', () => {
    const b = new ReconnectBackoff();
    assert.deepEqual(
      EXPECTED.map(() => b.next()),
      EXPECTED,
    );
    b.reset();
    assert.equal(b.next(), 10);
  });

  it('no agent socket: the waits between attempts follow the schedule, none above 15 s', async () => {
    const asked = await waits(join(dir, 'missing.sock'), EXPECTED.length);
    assert.deepEqual(asked, EXPECTED);
  });

  it('an agent that hangs up at once (never ready): the same schedule, none above 15 s', async () => {
    const uds = join(dir, 'hangup.sock');
    const server = SeqpacketServer.listen(uds);
    let accepted = 0;
    server.on('connection', (s) => {
      accepted++;
      s.close();
    });
    try {
      const asked = await waits(uds, EXPECTED.length);
      assert.deepEqual(asked, EXPECTED);
      assert.ok(accepted >= EXPECTED.length - 1, `each wait follows an attempt (${accepted} accepted)`);
    } finally {
      server.close();
    }
  });
});
