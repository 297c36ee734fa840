/**
 * How long a test waits for a condition that normally holds in well under a second. Generous on
 * purpose: the suite runs four files at once on a 2-core machine that may be busy with other work,
 * and a wait that ends as soon as its condition holds costs nothing when things are fast. Speed is
 * the benchmark's business, never a test's deadline.
 */
export const CONDITION_DEADLINE_MS = 60_000;

/** Polls `check` every 20 ms until it holds; throws naming `what` after `timeoutMs` (a bound, not a timing assertion). */
export async function eventually(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = CONDITION_DEADLINE_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Bounds a wait on something the test expects to happen: rejects naming `what` (and whatever `context`
 * returns then, e.g. component logs) after `timeoutMs`, so a hang fails with its reason, not at the
 * runner's file timeout.
 */
export function within<T>(
  p: Promise<T>,
  what: string,
  context: () => string = () => '',
  timeoutMs = CONDITION_DEADLINE_MS,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}${context()}`)),
      timeoutMs,
    );
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
