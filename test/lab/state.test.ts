import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { primaryOf } from '../../src/lab/conflist.js';
import { planNodes } from '../../src/lab/lab.js';
import { withLock } from '../../src/lab/lock.js';
import { readState, stateFile, writeState } from '../../src/lab/state.js';

describe('lab state file and lock', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-lab-state-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('write then read round-trips and leaves no temp file', () => {
    const state = planNodes('st', { name: 'st', nodes: 2 });
    assert.equal(readState('st', dir), undefined);
    writeState(state, dir);
    assert.deepEqual(readState('st', dir), state);
    assert.deepEqual(readdirSync(dir), ['state.json']);
  });

  test('a corrupt or foreign state file is an error naming the way out', () => {
    writeFileSync(stateFile('st', dir), '{"version":1,');
    assert.throws(() => readState('st', dir), { code: 'LAB_STATE_CORRUPT', message: /lab down --name st/ });
    writeFileSync(stateFile('st', dir), JSON.stringify({ version: 1, name: 'other', nodes: [], pods: [] }));
    assert.throws(() => readState('st', dir), { code: 'LAB_STATE_CORRUPT' });
  });

  test('the primary CNI is recorded; a state without one (older labs) reads as bridge; an unknown one is corrupt', () => {
    const state = planNodes('st', { name: 'st', nodes: 1, primaryCni: 'macvlan' });
    writeState(state, dir);
    assert.equal(readState('st', dir)?.primaryCni, 'macvlan');
    const { primaryCni: _, ...older } = state;
    writeState(older as typeof state, dir);
    assert.equal(primaryOf(readState('st', dir)!), 'bridge');
    writeState({ ...state, primaryCni: 'flannel' as never }, dir);
    assert.throws(() => readState('st', dir), {
      code: 'LAB_STATE_CORRUPT',
      message: /unknown primary CNI 'flannel'/,
    });
  });

  test('the lock runs holders one at a time', async () => {
    const lockDir = join(dir, 'serial');
    const events: string[] = [];
    const holder = (id: string) =>
      withLock(lockDir, async () => {
        events.push(`${id}+`);
        await sleep(30);
        events.push(`${id}-`);
      });
    await Promise.all([holder('a'), holder('b'), holder('c')]);
    for (let i = 0; i < events.length; i += 2) {
      assert.equal(events[i]!.slice(0, 1), events[i + 1]!.slice(0, 1), `interleaved: ${events.join(' ')}`);
    }
    assert.equal(events.length, 6);
  });

  test("a dead process's lock is taken over; a live one's times out with LAB_BUSY", async () => {
    const lockDir = join(dir, 'stale');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    withLockFile(lockDir, dead.stdout);
    assert.equal(await withLock(lockDir, async () => 'ran'), 'ran');
    withLockFile(lockDir, String(process.ppid));
    await assert.rejects(
      withLock(lockDir, async () => 'never', 200),
      { code: 'LAB_BUSY' },
    );
  });
});

function withLockFile(dir: string, pid: string): void {
  rmSync(dir, { recursive: true, force: true });
  spawnSync('mkdir', ['-p', dir]);
  writeFileSync(join(dir, 'lock'), pid);
}
