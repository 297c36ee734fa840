import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FdBudget, openFileLimit } from '../../src/sys/fd-budget.js';

const LIMITS = (soft: string) =>
  `Limit                     Soft Limit           Hard Limit           Units     \nMax processes             63432                63432                processes \nMax open files            ${soft}                 ${soft}                 files     \n`;

describe('FdBudget', () => {
  const dir = join(tmpdir(), `ambit-fdb-${process.pid}`);
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A fake /proc/<pid> with `open` entries in fd/ and the given soft limit. */
  function proc(open: number, soft: string): void {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, 'fd'), { recursive: true });
    for (let i = 0; i < open; i++) writeFileSync(join(dir, 'fd', String(i)), '');
    writeFileSync(join(dir, 'limits'), LIMITS(soft));
  }

  it('reads the soft open-file limit', () => {
    assert.equal(openFileLimit(LIMITS('1024')), 1024);
    assert.equal(openFileLimit(LIMITS('unlimited')), Number.POSITIVE_INFINITY);
    assert.equal(openFileLimit('nothing here'), Number.POSITIVE_INFINITY);
  });

  it('grants until only the reserve is left, counting grants between reads, and recovers when fds close', () => {
    let now = 0;
    proc(10, '200');
    const budget = new FdBudget({ procDir: dir, reserve: 50, now: () => now });
    let granted = 0;
    while (budget.tryTake()) granted++;
    assert.equal(granted, 140, '200 - 50 reserve - 10 open');
    assert.equal(budget.short, true);
    now += 60; // near the limit the count is re-read every 50 ms
    proc(20, '200');
    assert.equal(budget.short, false, 'the fds granted were closed again');
  });

  it('follows a lowered limit at once', () => {
    let now = 0;
    proc(10, '20000');
    const budget = new FdBudget({ procDir: dir, reserve: 50, now: () => now });
    assert.equal(budget.tryTake(), true);
    proc(10, '60');
    now += 150;
    assert.equal(budget.tryTake(), false);
  });

  it('has no budget without /proc', () => {
    const budget = new FdBudget({ procDir: join(dir, 'missing') });
    assert.equal(budget.tryTake(), true);
  });
});
