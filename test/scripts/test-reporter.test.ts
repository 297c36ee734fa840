/**
 * `npm test`'s reporter (scripts/test-reporter.mjs, issue 16): what test files print stays in a log
 * file per test file; the terminal gets a line per top-level test, each failure with its error and
 * the last lines of its file's log, and the counts; the run's exit code still says whether it failed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const REPORTER = fileURLToPath(new URL('../../../scripts/test-reporter.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ambit-reporter-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const QUIET = `import { test } from 'node:test';
test('quiet one', () => { console.log('QUIET-LOG a component line'); });
`;
const NOISY = `import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
describe('noisy suite', () => {
  test('fine', () => { console.error('NOISY-EARLY line'); });
  test('broken', () => {
    for (let i = 0; i < 200; i++) console.error('NOISY-LOG ' + i);
    assert.equal('expected-thing', 'actual-thing');
  });
});
`;

function run(files: Record<string, string>) {
  const paths = Object.entries(files).map(([name, text]) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  });
  const logs = mkdtempSync(join(dir, 'logs-'));
  // This file runs under the test runner, which marks its children; a run of our own must not inherit it.
  const env: NodeJS.ProcessEnv = { ...process.env, AMBIT_TEST_LOG_DIR: logs };
  delete env['NODE_TEST_CONTEXT'];
  const r = spawnSync(
    process.execPath,
    ['--test', `--test-reporter=${REPORTER}`, '--test-reporter-destination=stdout', ...paths],
    { cwd: dir, encoding: 'utf8', env, timeout: 120_000 },
  );
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, logs };
}

describe('scripts/test-reporter.mjs', () => {
  test('a passing run: one line per top-level test, no test output, the counts; exit 0', () => {
    const r = run({ 'quiet.test.mjs': QUIET });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^✔ quiet\.test\.mjs › quiet one \(\d+\.\ds\)$/m);
    assert.doesNotMatch(r.stdout, /QUIET-LOG/);
    assert.match(
      r.stdout,
      /^tests 1 {2}pass 1 {2}fail 0 {2}cancelled 0 {2}skipped 0 {2}todo 0 {2}\(\d+\.\ds\)\n$/m,
    );
    assert.match(readFileSync(join(r.logs, 'quiet.test.mjs.log'), 'utf8'), /QUIET-LOG a component line/);
  });

  test('a failing run: the failure with its error and its file log tail, others quiet; counts; exit 1', () => {
    const r = run({ 'quiet.test.mjs': QUIET, 'noisy.test.mjs': NOISY });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^✖ noisy\.test\.mjs › noisy suite › broken \(\d+\.\ds\)$/m);
    assert.match(r.stdout, /^=+ 1 failure\(s\) =+$/m);
    assert.match(r.stdout, /'expected-thing' !== 'actual-thing'|actual-thing/);
    const logFile = join(r.logs, 'noisy.test.mjs.log');
    assert.ok(existsSync(logFile));
    assert.ok(r.stdout.includes(`all of it in ${logFile}`), r.stdout);
    // The last lines, which explain the failure, not the whole log, and nothing of the passing file.
    assert.match(r.stdout, /^ {3}\| NOISY-LOG 199$/m);
    assert.doesNotMatch(r.stdout, /NOISY-LOG 0$/m);
    assert.doesNotMatch(r.stdout, /QUIET-LOG/);
    assert.match(readFileSync(logFile, 'utf8'), /NOISY-LOG 0\n[\s\S]*NOISY-LOG 199\n/);
    assert.match(
      r.stdout,
      /^tests 3 {2}pass 2 {2}fail 1 {2}cancelled 0 {2}skipped 0 {2}todo 0 {2}\(\d+\.\ds\)$/m,
    );
    assert.ok(r.stdout.includes(`one file per test file: ${r.logs}`));
  });
});
