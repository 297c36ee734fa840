/**
 * The words that run ambit again from the user's shell, for hints ("run `bin/ambit lab down ...`"): a
 * clone's `bin/ambit` is not on the PATH, so a bare `ambit` in a hint would not run. `ambit` when
 * the `ambit` found on the PATH is this very script; else, from the checkout, `bin/ambit`; else the
 * script's absolute path.
 */
import { existsSync, realpathSync } from 'node:fs';
import { basename, delimiter, isAbsolute, join, relative, sep } from 'node:path';

function real(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/** The script on the PATH named `name`, as the shell would pick it. */
function onPath(name: string, path: string | undefined): string | undefined {
  for (const dir of (path ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** Pure, for tests: `script` is process.argv[1] (absolute once Node resolved it). */
export function invocationOf(script: string | undefined, pathVar: string | undefined, cwd: string): string {
  // Run some other way (`node dist/src/cli/main.js`, a test's `node -e`): the installed name.
  if (!script || basename(script) !== 'ambit' || !isAbsolute(script)) return 'ambit';
  const self = real(script);
  const found = onPath('ambit', pathVar);
  if (self !== undefined && found !== undefined && real(found) === self) return 'ambit';
  // From the checkout (`bin/ambit`) or its bin (`./ambit`) the short path; from anywhere else the
  // absolute one, which reads better than `../../x/bin/ambit` or `tmp/x/bin/ambit`.
  const rel = relative(cwd, script);
  const parts = rel.split(sep);
  if (parts.includes('..') || isAbsolute(rel) || parts.length > 2) return script;
  return parts.length === 1 ? `.${sep}${rel}` : rel;
}

let cached: string | undefined;

/** How this process's ambit is run from the user's shell: `ambit`, `bin/ambit`, `/opt/ambit/bin/ambit`. */
export function ambitCommand(): string {
  cached ??= invocationOf(process.argv[1], process.env['PATH'], process.cwd());
  return cached;
}
