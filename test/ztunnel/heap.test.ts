/**
 * The ztunnel's heap flags reach Node from every launcher: bin/ambit's interpreter line (the image's
 * entrypoint and a clone's command) and the lab's process launcher (checked on a running lab ztunnel by
 * the lab e2e tests through its /proc cmdline).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { missingNodeFlags, ZTUNNEL_NODE_FLAGS } from '../../src/ztunnel/heap.js';

const AMBIT = fileURLToPath(new URL('../../../bin/ambit', import.meta.url));

test("bin/ambit's interpreter line carries every ztunnel heap flag", () => {
  const shebang = readFileSync(AMBIT, 'utf8').split('\n')[0] ?? '';
  assert.match(shebang, /^#!\/usr\/bin\/env -S node /);
  assert.deepEqual(missingNodeFlags(shebang.split(/\s+/)), []);
});

test("bin/ambit's interpreter line starts Node with the heap flags", () => {
  // What the kernel runs for `bin/ambit ...`: the interpreter line's command, here with a script that
  // prints the flags Node took (env -S must split them, or Node would see one unknown argument).
  const interpreter = (readFileSync(AMBIT, 'utf8').split('\n')[0] ?? '').slice('#!'.length);
  const [env, ...args] = interpreter.split(' ');
  const out = execFileSync(env!, [...args, '-e', 'process.stdout.write(JSON.stringify(process.execArgv))'], {
    encoding: 'utf8',
  });
  assert.deepEqual(missingNodeFlags(JSON.parse(out) as string[]), []);
});

test('missingNodeFlags names the flags a process lacks', () => {
  assert.deepEqual(missingNodeFlags([]), [...ZTUNNEL_NODE_FLAGS]);
  assert.deepEqual(missingNodeFlags(['--inspect', ...ZTUNNEL_NODE_FLAGS]), []);
});
