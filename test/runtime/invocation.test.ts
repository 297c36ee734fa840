/** Hints name ambit as the user can run it: `ambit` only when that is on the PATH and is this script. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { invocationOf } from '../../src/runtime/invocation.js';

const dir = mkdtempSync(join(tmpdir(), 'ambit-invocation-'));
const clone = join(dir, 'clone');
const script = join(clone, 'bin', 'ambit');
mkdirSync(join(clone, 'bin'), { recursive: true });
writeFileSync(script, '#!/bin/sh\n', { mode: 0o755 });
const pathDir = join(dir, 'path');
mkdirSync(pathDir);

after(() => rmSync(dir, { recursive: true, force: true }));

describe('invocationOf', () => {
  test("a clone's bin/ambit not on the PATH: the path as typed from the clone, or absolute from elsewhere", () => {
    assert.equal(invocationOf(script, '/usr/bin:/bin', clone), join('bin', 'ambit'));
    assert.equal(invocationOf(script, '/usr/bin:/bin', join(clone, 'bin')), `.${'/'}ambit`);
    assert.equal(invocationOf(script, '/usr/bin:/bin', '/'), script);
  });

  test('ambit on the PATH pointing at this very script: the bare name', () => {
    symlinkSync(script, join(pathDir, 'ambit'));
    assert.equal(invocationOf(script, `/usr/bin:${pathDir}`, clone), 'ambit');
  });

  test('another ambit on the PATH (another clone): not the bare name', () => {
    const other = join(dir, 'other', 'bin', 'ambit');
    mkdirSync(join(dir, 'other', 'bin'), { recursive: true });
    writeFileSync(other, '#!/bin/sh\n', { mode: 0o755 });
    assert.equal(invocationOf(other, `${pathDir}:/usr/bin`, '/'), other);
  });

  test('run without the bin script (node main.js, a test harness): the installed name', () => {
    assert.equal(invocationOf(undefined, '', '/'), 'ambit');
    assert.equal(invocationOf('/x/dist/src/cli/main.js', '', '/'), 'ambit');
    assert.equal(invocationOf('lab', '', '/'), 'ambit');
  });
});
