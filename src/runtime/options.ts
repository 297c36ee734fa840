/**
 * How the long-running commands read their options: a command-line flag wins over its environment
 * variable, the variable over the default, and every value remembers where it came from so that an
 * error names the flag or variable to fix. The value parsers answer undefined for a bad value; each
 * command says why, under the one configuration error code ERR_CONFIG.
 */
import { parseArgs } from 'node:util';
import type { CodedError } from '../errors.js';
import { runtimeError } from './errors.js';

export interface OptionSpec {
  flag: string;
  env?: string;
  /** Shown in --help; undefined = unset. */
  default?: string;
  help: string;
}

export interface OptionValue {
  text: string;
  /** `--flag` or `ENV_VAR`, for error messages. */
  source: string;
  /** Given by a flag or a variable, not the default. */
  explicit: boolean;
}

/**
 * Parses `argv` against `specs` (a parseArgs error propagates as it is) and returns the lookup of one
 * flag: its flag, else its non-blank variable, else its default, else undefined.
 */
export function readOptions(
  specs: readonly OptionSpec[],
  argv: string[],
  env: NodeJS.ProcessEnv,
): (flag: string) => OptionValue | undefined {
  const { values } = parseArgs({
    args: argv,
    options: Object.fromEntries(specs.map((o) => [o.flag, { type: 'string' as const }])),
    strict: true,
    allowPositionals: false,
  });
  return (flag) => {
    const spec = specs.find((o) => o.flag === flag);
    if (!spec) throw new Error(`no option --${flag}`);
    const fromFlag = values[flag];
    if (typeof fromFlag === 'string') return { text: fromFlag, source: `--${flag}`, explicit: true };
    const fromEnv = spec.env ? env[spec.env] : undefined;
    if (fromEnv !== undefined && fromEnv.trim() !== '')
      return { text: fromEnv, source: spec.env!, explicit: true };
    if (spec.default === undefined) return undefined;
    return { text: spec.default, source: spec.env ?? `--${flag}`, explicit: false };
  };
}

/** A bad configuration, said in `why`: the agent's and ztunnel's one configuration error. */
export function configError(why: string, options?: { cause?: unknown }): CodedError<'ERR_CONFIG'> {
  return runtimeError('ERR_CONFIG', why, options) as CodedError<'ERR_CONFIG'>;
}

/** The error for a bad value: `SOURCE=value: why`. */
export function optionError(value: OptionValue, why: string): CodedError<'ERR_CONFIG'> {
  return configError(`${value.source}=${value.text}: ${why}`);
}

/** `true`/`false`/`1`/`0` in any case, as Go reads booleans (CNI_ARGS, Istio's variables). */
export function parseBool(text: string): boolean | undefined {
  const v = text.toLowerCase();
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  return undefined;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Durations as ztunnel writes them (`500ms`, `5s`, `1.5m`, `1h`), in milliseconds. */
export function parseDurationMs(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  return m ? Math.round(Number(m[1]) * UNIT_MS[m[2]!]!) : undefined;
}

/** A socket mark from 1 to 2^32-1, decimal or 0x hex. */
export function parseMark(text: string): number | undefined {
  const v = text.trim();
  const n = /^0x[0-9a-f]+$/i.test(v) ? Number.parseInt(v, 16) : /^\d+$/.test(v) ? Number(v) : Number.NaN;
  return Number.isInteger(n) && n >= 1 && n <= 0xffffffff ? n : undefined;
}
