/**
 * Which failures are mistakes on the command line (exit 2 and a pointer to --help, in every
 * command) and how they read. Node's parseArgs words its errors for programmers ("To specify a
 * positional argument starting with a '-', place it ... as in '-- "--bogus"", quotes unbalanced);
 * the user gets one short line instead.
 */
import { errorCode, errorMessage } from '../errors.js';
import { UsageError } from './command.js';

/**
 * Codes raised for a bad value the user typed: a flag's value, a lab or pod name, a CIDR, a
 * component. The lab and redirect modules raise them from their parsers, which also serve the CLI.
 */
const USAGE_CODES = new Set([
  'ERR_USAGE',
  'ERR_CONFIG', // agent, ztunnel: a bad flag or variable
  'SELECTOR_INVALID', // agent: a bad enablement selector
  'ERR_REDIRECT_BAD_OPTION',
  'LAB_BAD_NAME',
  'LAB_BAD_NODES',
  'LAB_BAD_PODS',
  'LAB_BAD_POD',
  'LAB_BAD_CIDR',
  'LAB_BAD_IP_FAMILY',
  'LAB_BAD_PRIMARY_CNI',
  'LAB_SUBNET_TOO_SMALL',
  'LAB_BAD_COMPONENT',
  'LAB_NOT_CHOSEN', // several labs, none named
]);

export function isUsageError(err: unknown): boolean {
  if (err instanceof UsageError) return true;
  const code = errorCode(err);
  return code !== undefined && (code.startsWith('ERR_PARSE_ARGS') || USAGE_CODES.has(code));
}

/** Node's parseArgs wording, reworded; undefined for any other message. */
function parserMessage(message: string): string | undefined {
  let m = /^Unknown option '([^']+)'/.exec(message);
  if (m) return `unknown option '${m[1]}'`;
  m = /^Option '(?:-\w, )?(--?[^\s']+)(?: <value>)?' argument missing/.exec(message);
  if (m) return `option '${m[1]}' needs a value`;
  m = /^Option '(?:-\w, )?(--?[^\s']+)' does not take an argument/.exec(message);
  if (m) return `option '${m[1]}' takes no value`;
  m = /^Unexpected argument '(.*)'\. This command does not take positional arguments/.exec(message);
  if (m) return `unexpected argument '${m[1]}'`;
  return undefined;
}

/** The one line a usage error prints: the parser's reworded, else the message with its code. */
export function usageMessage(err: unknown): string {
  const message = errorMessage(err);
  const reworded = parserMessage(message);
  if (reworded !== undefined) return reworded;
  const code = errorCode(err);
  return code === undefined || code === 'ERR_USAGE' ? message : `${message} [${code}]`;
}
