/**
 * Log lines in the shape of Rust `tracing` as ztunnel prints them, so users' greps keep working:
 *   2024-02-21T22:01:49.916037Z  INFO ztunnel::inpod::statemanager: pod received snapshot sent
 * Structured fields follow the message as `key=value` (quoted when they contain spaces).
 */
import type { Writable } from 'node:stream';

export type Level = 'error' | 'warn' | 'info' | 'debug' | 'trace';
const ORDER: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3, trace: 4 };
export const LEVELS = Object.keys(ORDER) as Level[];

export type Fields = Record<string, string | number | boolean | bigint | undefined | null>;

interface Sink {
  write(line: string): void;
}

let sink: Sink = process.stdout;
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

export class Logger {
  constructor(readonly target: string) {}

  enabled(level: Level): boolean {
    return ORDER[level] <= ORDER[levelFor(this.target)];
  }

  log(level: Level, message: string, fields?: Fields): void {
    if (this.enabled(level)) sink.write(formatLine(level, this.target, message, fields));
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
    sink.write(`${line}\n`);
  }
}

export function logger(target: string): Logger {
  return new Logger(target);
}
