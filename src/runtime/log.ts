/**
 * Log lines in the shape of Rust `tracing` as ztunnel prints them, so users' greps keep working:
 *   2024-02-21T22:01:49.916037Z  INFO ztunnel::inpod::statemanager: pod received snapshot sent
 * Structured fields follow the message as `key=value` (quoted when they contain spaces).
 *
 * Two other shapes, as current Istio ztunnel prints them:
 * - a logger made with `{ style: 'istio' }` (the access log) writes ztunnel's current plain line,
 *   `<time>\t<level>\t<target>\t<message>\t<k=v ...>`, lowercase level, string values quoted and
 *   addresses (`Display` values) bare; the other lines keep the seed's shape above;
 * - `LOG_FORMAT=json` turns every line into one JSON object: `level`, `time`, `scope` (the target),
 *   `message`, then the fields by name.
 */
import type { Writable } from 'node:stream';

export type Level = 'error' | 'warn' | 'info' | 'debug' | 'trace';
const ORDER: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3, trace: 4 };
export const LEVELS = Object.keys(ORDER) as Level[];

/** A value printed as it is (ztunnel's `%` fields: addresses), never quoted in Istio's plain lines. */
export class Display {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

export type Fields = Record<string, string | number | boolean | bigint | Display | undefined | null>;

export type LogFormat = 'plain' | 'json';
export type LineStyle = 'tracing' | 'istio';

interface Sink {
  write(line: string): void;
}

let sink: Sink = process.stdout;
let format: LogFormat = parseLogFormat(process.env['LOG_FORMAT']);

/** ztunnel's LOG_FORMAT: `json`, anything else plain. */
export function parseLogFormat(value: string | undefined): LogFormat {
  return value?.trim().toLowerCase() === 'json' ? 'json' : 'plain';
}

export function setLogFormat(f: LogFormat): void {
  format = f;
}
let defaultLevel: Level = parseLevel(process.env['RUST_LOG'] ?? process.env['AMBIT_LOG']) ?? 'info';
/** Per-target overrides, longest prefix wins (`ztunnel::inpod=debug`). */
const targetLevels = new Map<string, Level>();

export function parseLevel(value: string | undefined): Level | undefined {
  const v = value?.trim().toLowerCase();
  return v && v in ORDER ? (v as Level) : undefined;
}

/** Sends every logger's lines to `out` (stderr for the CNI plugin, whose stdout is the CNI result). */
export function setLogSink(out: Writable | Sink): void {
  sink = out;
}

export function setLogLevel(level: Level, target?: string): void {
  if (target) targetLevels.set(target, level);
  else {
    defaultLevel = level;
    targetLevels.clear();
  }
}

/** Current levels as `target=level` pairs, the default under the key `default`. */
export function logLevels(): Record<string, Level> {
  return { default: defaultLevel, ...Object.fromEntries(targetLevels) };
}

function levelFor(target: string): Level {
  let best: Level = defaultLevel;
  let bestLen = -1;
  for (const [prefix, level] of targetLevels) {
    if ((target === prefix || target.startsWith(`${prefix}::`)) && prefix.length > bestLen) {
      best = level;
      bestLen = prefix.length;
    }
  }
  return best;
}

/** RFC 3339 UTC with microseconds, as tracing prints it. */
export function timestamp(now = Date.now()): string {
  const micros = String(Number(process.hrtime.bigint() / 1000n) % 1000).padStart(3, '0');
  return `${new Date(now).toISOString().slice(0, -1)}${micros}Z`;
}

const NEEDS_QUOTES = /[\s"=]/;
const LEVEL_TEXT: Record<Level, string> = {
  error: 'ERROR',
  warn: ' WARN',
  info: ' INFO',
  debug: 'DEBUG',
  trace: 'TRACE',
};

function formatValue(v: unknown): string {
  const s = String(v);
  return s === '' || NEEDS_QUOTES.test(s) ? JSON.stringify(s) : s;
}

export function formatLine(level: Level, target: string, message: string, fields?: Fields): string {
  let line = `${timestamp()} ${LEVEL_TEXT[level]} ${target}: ${message}`;
  if (fields) {
    // for...in over the object as given: every connection logs a line, and Object.entries' arrays showed.
    for (const k in fields) {
      const v = fields[k];
      if (v !== undefined) line += ` ${k}=${formatValue(v)}`;
    }
  }
  return `${line}\n`;
}

/** Current ztunnel's plain line: tab-separated, lowercase level, strings quoted, Display values bare. */
export function formatIstioLine(level: Level, target: string, message: string, fields?: Fields): string {
  let line = `${timestamp()}\t${level}\t${target}\t${message}`;
  if (fields) {
    let sep = '\t';
    for (const k in fields) {
      const v = fields[k];
      if (v === undefined) continue;
      line += `${sep}${k}=${typeof v === 'string' ? JSON.stringify(v) : String(v)}`;
      sep = ' ';
    }
  }
  return `${line}\n`;
}

/** `LOG_FORMAT=json`: one object per line; numbers and booleans stay JSON numbers and booleans. */
export function formatJsonLine(level: Level, target: string, message: string, fields?: Fields): string {
  const out: Record<string, unknown> = { level, time: timestamp(), scope: target, message };
  if (fields) {
    for (const k in fields) {
      const v = fields[k];
      if (v === undefined) continue;
      out[k] = typeof v === 'bigint' || v instanceof Display ? String(v) : v;
    }
  }
  return `${JSON.stringify(out)}\n`;
}

export class Logger {
  constructor(
    readonly target: string,
    readonly style: LineStyle = 'tracing',
  ) {}

  enabled(level: Level): boolean {
    return ORDER[level] <= ORDER[levelFor(this.target)];
  }

  log(level: Level, message: string, fields?: Fields): void {
    if (!this.enabled(level)) return;
    const write = format === 'json' ? formatJsonLine : this.style === 'istio' ? formatIstioLine : formatLine;
    sink.write(write(level, this.target, message, fields));
  }

  error(message: string, fields?: Fields): void {
    this.log('error', message, fields);
  }
  warn(message: string, fields?: Fields): void {
    this.log('warn', message, fields);
  }
  info(message: string, fields?: Fields): void {
    this.log('info', message, fields);
  }
  debug(message: string, fields?: Fields): void {
    this.log('debug', message, fields);
  }

  /** A plain line without timestamp/level, like ztunnel's start-up config dump (`inpod_enabled: true`). */
  raw(line: string): void {
    // In JSON every line must parse: the plain line becomes the message of an info record.
    sink.write(format === 'json' ? formatJsonLine('info', this.target, line) : `${line}\n`);
  }
}

export function logger(target: string, options: { style?: LineStyle } = {}): Logger {
  return new Logger(target, options.style);
}
