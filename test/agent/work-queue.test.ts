import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelay, WorkQueue } from '../../src/agent/work-queue.js';

describe('work queue backoff', () => {
  it('doubles from 5 ms and stays at 5 s', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 10, 11, 12, 100].map((n) => backoffDelay(n)),
      [5, 10, 20, 40, 2560, 5000, 5000, 5000],
    );
  });

  it('handles nothing before start, then every event once and in order', async () => {
    const seen: number[] = [];
    const q = new WorkQueue<{ n: number }>(async (item) => {
      seen.push(item.n);
    });
    for (let n = 1; n <= 5; n++) q.add({ n });
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(seen, []);
    q.start();
    await q.idle();
    assert.deepEqual(seen, [1, 2, 3, 4, 5]);
  });

  it('retries a failing event until it succeeds, without blocking the others', async () => {
    const attempts = new Map<string, number>();
    const order: string[] = [];
    const q = new WorkQueue<{ id: string }>(
      async (item) => {
        const n = (attempts.get(item.id) ?? 0) + 1;
        attempts.set(item.id, n);
        order.push(`${item.id}#${n}`);
        if (item.id === 'flaky' && n < 4) throw new Error('not yet');
      },
      { baseDelayMs: 2, maxDelayMs: 8 },
    );
    q.start();
    q.add({ id: 'flaky' });
    q.add({ id: 'ok' });
    await q.idle();
    assert.equal(attempts.get('flaky'), 4);
    assert.equal(attempts.get('ok'), 1);
    // The healthy event ran while the flaky one waited for its retry.
    assert.ok(order.indexOf('ok#1') < order.indexOf('flaky#2'), order.join(' '));
  });

  it('two equal events are two items (no key dedup)', async () => {
    let calls = 0;
    const q = new WorkQueue<object>(async () => {
      calls++;
    });
    const same = { pod: 'a' };
    q.add(same);
    q.add({ ...same });
    q.start();
    await q.idle();
    assert.equal(calls, 2);
  });

  it('stop drops queued items and pending retries', async () => {
    let calls = 0;
    const q = new WorkQueue<object>(
      async () => {
        calls++;
        throw new Error('always');
      },
      { baseDelayMs: 50 },
    );
    q.start();
    q.add({});
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(q.retrying, 1);
    q.stop();
    assert.equal(q.retrying, 0);
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(calls, 1);
  });
});
