/**
 * One lab command at a time per lab: commands read-modify-write the state file, and two
 * `lab pod add` runs racing would lose a pod. The lock file holds the owner's pid, so a lock left
 * by a crashed process is taken over instead of blocking forever.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorCode } from '../errors.js';
import { labError } from './errors.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errorCode(err) === 'EPERM';
  }
}

function tryAcquire(file: string): boolean {
  try {
    writeFileSync(file, String(process.pid), { flag: 'wx' });
    return true;
  } catch (err) {
    if (errorCode(err) !== 'EEXIST') throw err;
  }
  const owner = Number(readFileSafe(file));
  if (Number.isInteger(owner) && owner > 0 && alive(owner)) return false;
  rmSync(file, { force: true });
  return false;
}

function readFileSafe(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Runs `fn` holding the lock file in `dir` (created if needed); waits up to `timeoutMs` for it. */
export async function withLock<T>(dir: string, fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const file = join(dir, 'lock');
  const deadline = Date.now() + timeoutMs;
  while (!tryAcquire(file)) {
    if (Date.now() > deadline) {
      throw labError(
        'LAB_BUSY',
        `another ambit lab command (pid ${readFileSafe(file) || '?'}) holds ${file}; wait for it or stop it`,
      );
    }
    await sleep(50);
  }
  try {
    return await fn();
  } finally {
    if (readFileSafe(file) === String(process.pid)) rmSync(file, { force: true });
  }
}
