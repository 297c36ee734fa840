/** Writes that a reader never sees half-done: temp file in the same dir, fsync, rename over the target. */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readdirSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export function writeFileAtomic(path: string, data: string | Buffer, mode: number): void {
  const dir = dirname(path);
  const tmp = join(dir, `${basename(path)}.tmp.${randomBytes(4).toString('hex')}`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    unlinkSync(tmp);
    throw err;
  }
}

/** Leftovers of a write that was interrupted (`<name>.tmp.*`), as istio-cni deletes them before copying. */
export function removeStaleTemps(dir: string, name: string): void {
  for (const entry of readdirSync(dir)) {
    if (entry.startsWith(`${name}.tmp.`)) {
      try {
        unlinkSync(join(dir, entry));
      } catch {}
    }
  }
}
