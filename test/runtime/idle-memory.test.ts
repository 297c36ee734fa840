/**
 * The release of memory after load: when it fires (busy, then quiet long enough, once per burst) with
 * a fake CPU clock, and that the release really returns freed buffers' memory to the kernel, in a
 * child Node started as the ztunnel is (--expose-gc).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { IdleMemoryRelease } from '../../src/runtime/idle-memory.js';
import { ZTUNNEL_NODE_FLAGS } from '../../src/ztunnel/heap.js';

/** A release driven by hand: each step adds `ms` of CPU time over one 1 s sample. */
function driven() {
  let cpuMicros = 0;
  const r = new IdleMemoryRelease({
    checkMs: 1000,
    quietMs: 3000,
    cpuMicros: () => cpuMicros,
    rssBytes: () => 0,
    release: async () => {},
  });
  // start() arms the timer; the test samples by hand and stops the timer at once.
  r.start().stop();
  const step = (cpuMs: number) => {
    cpuMicros += cpuMs * 1000;
    r.sample();
    return r.releases;
  };
  return step;
}

test('a quiet spell after start-up releases once; a quiet process does nothing more', () => {
  const step = driven();
  assert.equal(step(0), 0);
  assert.equal(step(0), 0);
  assert.equal(step(0), 1, 'three quiet seconds after the start-up burst');
  for (let i = 0; i < 10; i++) assert.equal(step(0), 1, 'no burst since: no second release');
});

test('each burst followed by a quiet spell releases once; a murmur (1-5 % CPU) delays it', () => {
  const step = driven();
  for (let i = 0; i < 3; i++) step(0);
  assert.equal(step(500), 1, 'a burst at 50 % of a core');
  assert.equal(step(0), 1);
  assert.equal(step(20), 1, '2 %: not quiet, not busy; the quiet count starts again');
  assert.equal(step(0), 1);
  assert.equal(step(0), 1);
  assert.equal(step(0), 2, 'three quiet seconds in a row');
  assert.equal(step(0), 2);
});

test('the release gives a burst of freed buffers back to the kernel', () => {
  // 256 MiB of 64 KiB buffers (the size of a socket read), then dropped: without a full collection
  // and malloc_trim most of it stays resident.
  const script = `
    import { readFileSync } from 'node:fs';
    const { releaseFreeMemory } = await import(${JSON.stringify(new URL('../../src/runtime/idle-memory.js', import.meta.url).href)});
    const anon = () => Number(/RssAnon:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
    const base = anon();
    let held = [];
    for (let i = 0; i < 4096; i++) held.push(Buffer.alloc(65536, i));
    const peak = anon();
    held = undefined;
    await releaseFreeMemory();
    console.log(JSON.stringify({ base, peak, after: anon() }));
  `;
  const out = execFileSync(process.execPath, [...ZTUNNEL_NODE_FLAGS, '--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
  const { base, peak, after } = JSON.parse(out) as { base: number; peak: number; after: number };
  assert.ok(peak - base > 200, `the buffers were resident: ${JSON.stringify({ base, peak })}`);
  assert.ok(
    after - base < 32,
    `released to within 32 MiB of the start: ${JSON.stringify({ base, peak, after })} MiB`,
  );
});
