/**
 * Gives memory back after a burst of traffic. Under load the data path's buffers (socket reads, TLS
 * records, frames in flight) fill glibc's malloc arenas and V8's young generation; once the load
 * stops nothing shrinks them: measured on a lab, a ztunnel that carried 1 GiB plus 500 connections
 * each way held 52-82 MiB of anonymous memory 30 s later against 17 MiB before, 29-39 MiB of it free
 * chunks in the C heap. When the process has been busy and then quiet for `quietMs`, this runs one
 * full V8 collection (if the process was started with --expose-gc) and malloc_trim(0), once per
 * burst. Idle is judged from the process's own CPU time, so nothing on the data path has to report.
 */
import { errorMessage } from '../errors.js';
import { trimMallocArenas } from '../sys/index.js';
import { logger } from './log.js';

const log = logger('ztunnel::memory');

export interface IdleMemoryOptions {
  /** How often CPU use is sampled. */
  checkMs?: number;
  /** How long CPU use must stay below `idleShare` after a busy period before memory is released. */
  quietMs?: number;
  /** A sample at or above this share of one core marks the process busy. */
  busyShare?: number;
  /** A sample below this share of one core counts as quiet. */
  idleShare?: number;
  /** For tests: the process's CPU time in microseconds, the resident set in bytes, the release. */
  cpuMicros?: () => number;
  rssBytes?: () => number;
  release?: () => Promise<void>;
}

const DEFAULTS = { checkMs: 5_000, quietMs: 10_000, busyShare: 0.05, idleShare: 0.01 };

/** How long the buffers' memory must hold still after the collection before the trim, and the bound. */
const SETTLE_STEP_MS = 10;
const SETTLE_STEADY_STEPS = 5;
const SETTLE_LIMIT_MS = 2_000;

/**
 * A full collection when --expose-gc put `gc` on the global object; then the C heap's free pages.
 * V8 frees the backing stores of the buffers the collection found dead afterwards, in tasks and on a
 * background thread: a trim right after `gc()` found nothing to return (256 MiB of dropped 64 KiB
 * buffers stayed resident), and one turn of the event loop later was not always enough on a loaded
 * machine. So the trim waits until the buffers' memory (`arrayBuffers`) has stopped falling for
 * 50 ms, at most 2 s; whatever is freed later goes back at the next release.
 */
export async function releaseFreeMemory(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc === 'function') {
    gc();
    const deadline = Date.now() + SETTLE_LIMIT_MS;
    let last = process.memoryUsage().arrayBuffers;
    let steady = 0;
    while (steady < SETTLE_STEADY_STEPS && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, SETTLE_STEP_MS));
      const now = process.memoryUsage().arrayBuffers;
      steady = now < last ? 0 : steady + 1;
      last = now;
    }
  }
  trimMallocArenas();
}

function processCpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

export class IdleMemoryRelease {
  readonly #o: Required<Omit<IdleMemoryOptions, 'cpuMicros' | 'rssBytes' | 'release'>>;
  readonly #cpuMicros: () => number;
  readonly #rssBytes: () => number;
  readonly #release: () => Promise<void>;
  #timer: NodeJS.Timeout | undefined;
  #lastCpu = 0;
  #busy = false;
  #quietFor = 0;
  /** How many times memory was released (for tests and the debug log). */
  releases = 0;

  constructor(options: IdleMemoryOptions = {}) {
    this.#o = {
      checkMs: options.checkMs ?? DEFAULTS.checkMs,
      quietMs: options.quietMs ?? DEFAULTS.quietMs,
      busyShare: options.busyShare ?? DEFAULTS.busyShare,
      idleShare: options.idleShare ?? DEFAULTS.idleShare,
    };
    this.#cpuMicros = options.cpuMicros ?? processCpuMicros;
    this.#rssBytes = options.rssBytes ?? (() => process.memoryUsage.rss());
    this.#release = options.release ?? releaseFreeMemory;
  }

  start(): this {
    this.#lastCpu = this.#cpuMicros();
    // Start-up itself is a burst (TLS, xDS, compiling): the first quiet spell releases its garbage.
    this.#busy = true;
    this.#timer = setInterval(() => this.sample(), this.#o.checkMs);
    this.#timer.unref();
    return this;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One sample of CPU use over the last `checkMs`; the timer calls it, tests call it directly. */
  sample(): void {
    const cpu = this.#cpuMicros();
    const share = (cpu - this.#lastCpu) / (this.#o.checkMs * 1000);
    this.#lastCpu = cpu;
    if (share >= this.#o.busyShare) {
      this.#busy = true;
      this.#quietFor = 0;
      return;
    }
    if (share >= this.#o.idleShare) {
      this.#quietFor = 0;
      return;
    }
    this.#quietFor += this.#o.checkMs;
    if (!this.#busy || this.#quietFor < this.#o.quietMs) return;
    this.#busy = false;
    this.releases++;
    const before = this.#rssBytes();
    void this.#release().then(
      () => {
        // The release's own CPU must not count as the next burst.
        this.#lastCpu = this.#cpuMicros();
        log.debug('released free memory after a busy period', {
          rss_before_mib: Math.round(before / 2 ** 20),
          rss_after_mib: Math.round(this.#rssBytes() / 2 ** 20),
        });
      },
      (err: unknown) => log.warn('releasing free memory failed', { error: errorMessage(err) }),
    );
  }
}
