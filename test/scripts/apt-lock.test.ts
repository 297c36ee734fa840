/**
 * scripts/setup waits for another apt/dpkg process's lock instead of failing at once (issue 16):
 * scripts/lib/apt-lock.sh, run by bash against a lock file this test holds (flock(1), as dpkg's
 * lock shows in /proc/locks), waits while it is held, names the holder, goes on once it is released,
 * and gives up with a clear message after its bound.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { eventually, within } from '../helpers/wait.js';

const LIB = fileURLToPath(new URL('../../../scripts/lib/apt-lock.sh', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ambit-apt-lock-'));
const lockFile = join(dir, 'lock-frontend');
writeFileSync(lockFile, '');
const holders: ChildProcess[] = [];

after(() => {
  for (const h of holders) h.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function env(timeout: number, who?: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    APT_LOCK_FILES: `${join(dir, 'absent')} ${lockFile}`,
    APT_LOCK_TIMEOUT: String(timeout),
    ...(who === undefined ? {} : { APT_LOCK_WHO: who }),
  };
}

function holderLine(): string {
  const r = spawnSync('bash', ['-c', `. '${LIB}'; apt_lock_holder`], { env: env(1), encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : '';
}

/** Holds the lock until its stdin closes, as another apt-get would until it finishes. */
async function holdLock(): Promise<ChildProcess> {
  const holder = spawn('flock', [lockFile, 'cat'], { stdio: ['pipe', 'ignore', 'ignore'] });
  holders.push(holder);
  await eventually('the test holder to take the lock', () => holderLine() !== '');
  return holder;
}

describe('scripts/lib/apt-lock.sh', () => {
  test('no lock held: wait_for_apt_lock returns at once, silently', () => {
    const r = spawnSync('bash', ['-c', `. '${LIB}'; wait_for_apt_lock; echo went-on`], {
      env: env(900),
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'went-on\n');
    assert.equal(r.stderr, '');
  });

  test('a held lock: names the holder, waits, and goes on once it is released', async () => {
    const holder = await holdLock();
    assert.match(holderLine(), new RegExp(`^pid \\d+ \\(flock\\) holds ${lockFile}$`));
    const waiter = spawn('bash', ['-c', `. '${LIB}'; wait_for_apt_lock; echo went-on`], { env: env(900) });
    let stdout = '';
    let stderr = '';
    waiter.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    waiter.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => waiter.on('close', resolve));
    await eventually('the waiting message', () => stderr.includes('waiting up to 900s'));
    assert.match(
      stderr,
      new RegExp(
        `^scripts/setup: another package manager is busy \\(pid ${holder.pid} \\(flock\\) holds ${lockFile}\\); waiting up to 900s for it to finish$`,
        'm',
      ),
    );
    assert.equal(stdout, '', 'still waiting while the lock is held');
    holder.stdin!.end();
    const code = await within(exited, 'the waiter to go on after the lock was released', () => stderr);
    assert.equal(code, 0, stderr);
    assert.equal(stdout, 'went-on\n');
    assert.match(stderr, /the apt\/dpkg lock is free; going on/);
  });

  test('the messages name the script that waits (scripts/build-image as well as scripts/setup)', async () => {
    const holder = await holdLock();
    const r = spawnSync('bash', ['-c', `. '${LIB}'; wait_for_apt_lock`], {
      env: env(1, 'scripts/build-image'),
      encoding: 'utf8',
      timeout: 60_000,
    });
    holder.stdin!.end();
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^scripts\/build-image: another package manager is busy/m);
    assert.match(
      r.stderr,
      /^scripts\/build-image: the apt\/dpkg lock is still held .* run scripts\/build-image again/m,
    );
  });

  test('every script installs packages through the lock wait, none calls apt-get itself', () => {
    const scripts = fileURLToPath(new URL('../../../scripts/', import.meta.url));
    const direct = readdirSync(scripts, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && join(e.parentPath, e.name) !== LIB)
      .flatMap((e) => {
        const path = join(e.parentPath, e.name);
        return readFileSync(path, 'utf8')
          .split('\n')
          .filter((line) => /^\s*apt-get\s+(update|install)\b/.test(line))
          .map((line) => `${path}: ${line.trim()}`);
      });
    assert.deepEqual(direct, [], 'use apt_get_waiting from scripts/lib/apt-lock.sh');
  });

  test('a lock held past the bound: exit 1 naming the holder and how to wait longer', async () => {
    const holder = await holdLock();
    const r = spawnSync('bash', ['-c', `. '${LIB}'; wait_for_apt_lock; echo went-on`], {
      env: env(1),
      encoding: 'utf8',
      timeout: 60_000,
    });
    holder.stdin!.end();
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(
      r.stderr,
      /the apt\/dpkg lock is still held after 1s \(pid \d+ \(flock\) holds .*\); .*APT_LOCK_TIMEOUT=SECONDS/,
    );
  });
});
