/**
 * Prometheus metrics: counters and gauges with labels, a registry that renders the text exposition
 * format (version 0.0.4), and the process metrics every Prometheus client exports.
 *
 * Hand-written rather than prom-client: importing prom-client (with the @opentelemetry/api and
 * tdigest modules it loads) raised a bare Node process's RSS by ~10 MiB (41.6 -> 52.0 MiB) and the
 * ztunnel's by ~3 MiB (63.2 -> 60.5 MiB, import only; the rest is shared with its other imports), and
 * its default metrics keep a 10 ms event-loop-delay timer waking every ztunnel 100 times a second. What ambit needs is this file: the names, types, labels and text are the
 * ones Istio's ztunnel and the Prometheus format define, so dashboards and scrapers see no change.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { openFileLimit } from '../sys/fd-budget.js';

export type LabelValues<L extends string> = Partial<Record<L, string | number>>;

export interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  /** A histogram's sample: `_bucket` (with an `le` label), `_sum` or `_count`. */
  suffix?: string;
}

export interface MetricSnapshot {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  values: MetricValue[];
}

export interface MetricOptions<L extends string, M> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  /** Registries to register with (none: a metric of its own, read with get()). */
  registers?: Registry[];
  /** Called before each read, with the metric as `this`: sets values computed at scrape time. */
  collect?: (this: M) => void;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * A metric's series by label values (its key: the values in labelNames order, names a series does not
 * give are ''). A series is made the first time its labels are seen, after checking their names, and
 * keeps its labels as first given. Shared by the single-value metrics and the histogram.
 */
class SeriesTable<L extends string, S> {
  readonly #byKey = new Map<string, S>();

  constructor(
    readonly metric: string,
    readonly labelNames: readonly L[],
    readonly make: (labels: Record<string, string | number>) => S,
    reserved: readonly string[] = [],
  ) {
    if (!NAME.test(metric)) throw new Error(`invalid metric name '${metric}'`);
    for (const l of labelNames)
      if (!LABEL_NAME.test(l) || l.startsWith('__') || reserved.includes(l))
        throw new Error(`invalid label name '${l}'`);
  }

  keyOf(labels: LabelValues<L>): string {
    let key = '';
    for (const name of this.labelNames) key += `${labels[name] ?? ''}\u0000`;
    return key;
  }

  get(labels: LabelValues<L>, key = this.keyOf(labels)): S {
    let entry = this.#byKey.get(key);
    if (entry === undefined) {
      for (const name of Object.keys(labels)) {
        if (!this.labelNames.includes(name as L))
          throw new Error(`metric ${this.metric}: label '${name}' was not declared`);
      }
      entry = this.make({ ...(labels as Record<string, string | number>) });
      this.#byKey.set(key, entry);
    }
    return entry;
  }

  values(): IterableIterator<S> {
    return this.#byKey.values();
  }

  clear(): void {
    this.#byKey.clear();
  }
}

abstract class Metric<L extends string> {
  readonly name: string;
  readonly help: string;
  abstract readonly type: 'counter' | 'gauge';
  readonly #collect: (() => void) | undefined;
  readonly #values: SeriesTable<L, MetricValue>;

  constructor(options: MetricOptions<L, unknown>) {
    this.#values = new SeriesTable(options.name, options.labelNames ?? [], (labels) => ({
      labels,
      value: 0,
    }));
    this.name = options.name;
    this.help = options.help;
    this.#collect = options.collect?.bind(this);
    for (const r of options.registers ?? []) r.registerMetric(this);
    this.#unlabelledZero();
  }

  /** An unlabelled metric shows 0 before its first change (a labelled one shows no sample). */
  #unlabelledZero(): void {
    if (this.#values.labelNames.length === 0) this.#values.get({});
  }

  /** The key of the series these labels name: work it out once for a caller that needs several series. */
  keyOf(labels: LabelValues<L>): string {
    return this.#values.keyOf(labels);
  }

  protected series(labels: LabelValues<L>, key = this.keyOf(labels)): MetricValue {
    return this.#values.get(labels, key);
  }

  protected add(labels: LabelValues<L>, delta: number): void {
    this.series(labels).value += delta;
  }

  protected put(labels: LabelValues<L>, value: number): void {
    this.series(labels).value = value;
  }

  /** Forgets every labelled value; an unlabelled metric goes back to 0. */
  reset(): void {
    this.#values.clear();
    this.#unlabelledZero();
  }

  /** The current values, after the collect hook (async like prom-client's, for its callers). */
  async get(): Promise<MetricSnapshot> {
    return this.snapshot();
  }

  snapshot(): MetricSnapshot {
    this.#collect?.();
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values: [...this.#values.values()].map((v) => ({ labels: { ...v.labels }, value: v.value })),
    };
  }
}

export class Counter<L extends string = string> extends Metric<L> {
  readonly type = 'counter';

  constructor(options: MetricOptions<L, Counter<L>>) {
    super(options as MetricOptions<L, unknown>);
  }

  /** inc(), inc(5), inc({ label: 'x' }), inc({ label: 'x' }, 5). A counter never goes down. */
  inc(labelsOrValue?: LabelValues<L> | number, value?: number): void {
    const [labels, by] =
      typeof labelsOrValue === 'object' ? [labelsOrValue, value ?? 1] : [{}, labelsOrValue ?? 1];
    if (!(by >= 0)) throw new Error(`counter ${this.name}: cannot increase by ${by}`);
    this.add(labels, by);
  }

  /**
   * One series, its key worked out once: for a caller that increases the same series several times (a
   * connection's opened/closed/bytes). It appears in the output with its first increase.
   */
  labels(labels: LabelValues<L>, key = this.keyOf(labels)): CounterSeries {
    return {
      inc: (by = 1) => {
        if (!(by >= 0)) throw new Error(`counter ${this.name}: cannot increase by ${by}`);
        this.series(labels, key).value += by;
      },
    };
  }
}

export interface CounterSeries {
  inc(by?: number): void;
}

export class Gauge<L extends string = string> extends Metric<L> {
  readonly type = 'gauge';

  constructor(options: MetricOptions<L, Gauge<L>>) {
    super(options as MetricOptions<L, unknown>);
  }

  /** set(3) or set({ label: 'x' }, 3). */
  set(labelsOrValue: LabelValues<L> | number, value?: number): void {
    if (typeof labelsOrValue === 'number') this.put({}, labelsOrValue);
    else this.put(labelsOrValue, value ?? 0);
  }

  inc(labelsOrValue?: LabelValues<L> | number, value?: number): void {
    if (typeof labelsOrValue === 'object') this.add(labelsOrValue, value ?? 1);
    else this.add({}, labelsOrValue ?? 1);
  }

  dec(labelsOrValue?: LabelValues<L> | number, value?: number): void {
    if (typeof labelsOrValue === 'object') this.add(labelsOrValue, -(value ?? 1));
    else this.add({}, -(labelsOrValue ?? 1));
  }
}

/** Prometheus's default buckets (seconds). */
export const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

interface HistogramSeries {
  labels: Record<string, string | number>;
  /** Observations per bucket (not cumulative), the last one for +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

export interface HistogramOptions<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  /** Upper bounds, ascending; +Inf is added. Default DEFAULT_BUCKETS. */
  buckets?: readonly number[];
  registers?: Registry[];
}

/** A histogram: `_bucket{le}` (cumulative), `_sum` and `_count` per series, as Prometheus clients write it. */
export class Histogram<L extends string = string> {
  readonly type = 'histogram';
  readonly name: string;
  readonly help: string;
  readonly #buckets: readonly number[];
  readonly #series: SeriesTable<L, HistogramSeries>;

  constructor(options: HistogramOptions<L>) {
    const buckets = options.buckets ?? DEFAULT_BUCKETS;
    this.#series = new SeriesTable(
      options.name,
      options.labelNames ?? [],
      (labels) => ({ labels, counts: new Array(buckets.length + 1).fill(0), sum: 0, count: 0 }),
      ['le'],
    );
    if (buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!)))
      throw new Error(`histogram ${options.name}: buckets must be finite and ascending`);
    this.name = options.name;
    this.help = options.help;
    this.#buckets = [...buckets];
    for (const r of options.registers ?? []) r.registerMetric(this);
  }

  observe(labels: LabelValues<L>, value: number): void {
    const series = this.#series.get(labels);
    let i = 0;
    while (i < this.#buckets.length && value > this.#buckets[i]!) i++;
    series.counts[i]!++;
    series.sum += value;
    series.count++;
  }

  reset(): void {
    this.#series.clear();
  }

  snapshot(): MetricSnapshot {
    const values: MetricValue[] = [];
    for (const s of this.#series.values()) {
      let cumulative = 0;
      this.#buckets.forEach((le, i) => {
        cumulative += s.counts[i]!;
        values.push({ labels: { ...s.labels, le: formatNumber(le) }, value: cumulative, suffix: '_bucket' });
      });
      values.push({ labels: { ...s.labels, le: '+Inf' }, value: s.count, suffix: '_bucket' });
      values.push({ labels: { ...s.labels }, value: s.sum, suffix: '_sum' });
      values.push({ labels: { ...s.labels }, value: s.count, suffix: '_count' });
    }
    return { name: this.name, help: this.help, type: this.type, values };
  }

  async get(): Promise<MetricSnapshot> {
    return this.snapshot();
  }
}

type AnyMetric = Counter | Gauge | Histogram;

export class Registry {
  readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';
  readonly #metrics = new Map<string, AnyMetric>();

  registerMetric(metric: Metric<string> | Histogram<string>): void {
    if (this.#metrics.has(metric.name))
      throw new Error(`a metric named ${metric.name} is already registered`);
    this.#metrics.set(metric.name, metric as AnyMetric);
  }

  getSingleMetric(name: string): AnyMetric | undefined {
    return this.#metrics.get(name);
  }

  /** Every metric in the text exposition format, in registration order. */
  async metrics(): Promise<string> {
    let out = '';
    for (const metric of this.#metrics.values()) out += render(metric.snapshot());
    return out;
  }
}

function render(m: MetricSnapshot): string {
  let out = `# HELP ${m.name} ${escapeHelp(m.help)}\n# TYPE ${m.name} ${m.type}\n`;
  for (const v of m.values) {
    const labels = Object.entries(v.labels)
      .map(([k, value]) => `${k}="${escapeLabel(String(value))}"`)
      .join(',');
    out += `${m.name}${v.suffix ?? ''}${labels ? `{${labels}}` : ''} ${formatNumber(v.value)}\n`;
  }
  return out;
}

function escapeHelp(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeLabel(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Number.POSITIVE_INFINITY) return '+Inf';
  if (n === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(n);
}

/**
 * The process metrics of the Prometheus client libraries (same names and meanings): CPU seconds,
 * resident and virtual memory, open and maximum file descriptors, start time. Read at scrape time.
 */
export function registerProcessMetrics(registry: Registry): void {
  const startSeconds = Math.round(Date.now() / 1000 - process.uptime());
  new Counter({
    name: 'process_cpu_user_seconds_total',
    help: 'Total user CPU time spent in seconds.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(process.cpuUsage().user / 1e6);
    },
  });
  new Counter({
    name: 'process_cpu_system_seconds_total',
    help: 'Total system CPU time spent in seconds.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(process.cpuUsage().system / 1e6);
    },
  });
  new Counter({
    name: 'process_cpu_seconds_total',
    help: 'Total user and system CPU time spent in seconds.',
    registers: [registry],
    collect() {
      const { user, system } = process.cpuUsage();
      this.reset();
      this.inc((user + system) / 1e6);
    },
  });
  new Gauge({
    name: 'process_start_time_seconds',
    help: 'Start time of the process since unix epoch in seconds.',
    registers: [registry],
    collect() {
      this.set(startSeconds);
    },
  });
  new Gauge({
    name: 'process_resident_memory_bytes',
    help: 'Resident memory size in bytes.',
    registers: [registry],
    collect() {
      this.set(process.memoryUsage.rss());
    },
  });
  new Gauge({
    name: 'process_virtual_memory_bytes',
    help: 'Virtual memory size in bytes.',
    registers: [registry],
    collect() {
      this.set(statusField('VmSize'));
    },
  });
  new Gauge({
    name: 'process_open_fds',
    help: 'Number of open file descriptors.',
    registers: [registry],
    collect() {
      this.set(openFds());
    },
  });
  new Gauge({
    name: 'process_max_fds',
    help: 'Maximum number of open file descriptors.',
    registers: [registry],
    collect() {
      this.set(maxFds());
    },
  });
}

/** A `kB` field of /proc/self/status in bytes; NaN where there is no /proc. */
function statusField(field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

function openFds(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return Number.NaN;
  }
}

function maxFds(): number {
  try {
    return openFileLimit(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return Number.NaN;
  }
}
