/**
 * How close this process is to its open-file limit (RLIMIT_NOFILE). A server asks before spending a
 * descriptor on new work and refuses that work while fewer than `reserve` remain, so what must keep
 * working (readiness, admin, metrics, established connections, pod enrolment) still finds descriptors.
 * Counting /proc/self/fd costs time in proportion to the fds open, so the count is re-read at most once a
 * second while far from the limit (every 50 ms near it), and descriptors granted in between are added.
 * The limit itself is re-read every 100 ms: `prlimit --pid` can change it while the process runs.
 */
import { readdirSync, readFileSync } from 'node:fs';

const FAR_REFRESH_MS = 1000;
const NEAR_REFRESH_MS = 50;
/** The limit file is small; re-read often, so a lowered limit (`prlimit --pid`) counts at once. */
const LIMIT_REFRESH_MS = 100;

export interface FdBudgetOptions {
  /** Descriptors kept back from new work; default 5% of the limit, at least 128, at most 1024. */
  reserve?: number;
  /** Where to read `fd/` and `limits` (tests); default /proc/self. */
  procDir?: string;
  now?: () => number;
}

/** The soft "Max open files" of a /proc/<pid>/limits text; Infinity when unlimited. */
export function openFileLimit(limits: string): number {
  const m = /^Max open files\s+(\S+)/m.exec(limits);
  if (!m || m[1] === 'unlimited') return Number.POSITIVE_INFINITY;
  const n = Number(m[1]);
  return Number.isFinite(n) && n > 0 ? n : Number.POSITIVE_INFINITY;
}

export class FdBudget {
  readonly #procDir: string;
  readonly #reserve: number | undefined;
  readonly #now: () => number;
  #limit = Number.POSITIVE_INFINITY;
  #open = 0;
  /** Granted since the last count (not yet visible in it, or already spent and closed). */
  #granted = 0;
  #countedAt = Number.NEGATIVE_INFINITY;
  #limitReadAt = Number.NEGATIVE_INFINITY;

  constructor(options: FdBudgetOptions = {}) {
    this.#procDir = options.procDir ?? '/proc/self';
    this.#reserve = options.reserve;
    this.#now = options.now ?? Date.now;
  }

  /** Limit and count as of the last refresh. */
  get limit(): number {
    return this.#limit;
  }

  get open(): number {
    return this.#open + this.#granted;
  }

  get reserve(): number {
    if (this.#reserve !== undefined) return this.#reserve;
    return Math.min(1024, Math.max(128, Math.floor(this.#limit / 20)));
  }

  /** Grants `n` descriptors for new work unless that would eat into the reserve. */
  tryTake(n = 1): boolean {
    this.#refresh();
    if (this.#open + this.#granted + n > this.#limit - this.reserve) return false;
    this.#granted += n;
    return true;
  }

  /** Whether new work is being refused right now. */
  get short(): boolean {
    this.#refresh();
    return this.#open + this.#granted >= this.#limit - this.reserve;
  }

  #refresh(): void {
    const now = this.#now();
    try {
      if (now - this.#limitReadAt >= LIMIT_REFRESH_MS) {
        this.#limitReadAt = now;
        this.#limit = openFileLimit(readFileSync(`${this.#procDir}/limits`, 'utf8'));
      }
      const near = this.#open + this.#granted >= (this.#limit - this.reserve) / 2;
      if (now - this.#countedAt < (near ? NEAR_REFRESH_MS : FAR_REFRESH_MS)) return;
      this.#countedAt = now;
      this.#open = readdirSync(`${this.#procDir}/fd`).length;
      this.#granted = 0;
    } catch (err) {
      // Out of descriptors to even look: refuse new work until a count succeeds. (No /proc: no budget.)
      const code = (err as NodeJS.ErrnoException).code;
      if ((code === 'EMFILE' || code === 'ENFILE') && Number.isFinite(this.#limit)) {
        this.#open = this.#limit;
        this.#granted = 0;
      }
    }
  }
}
