// The test run's reporter (node --test --test-reporter=./scripts/test-reporter.mjs): a line per
// top-level test or suite, the failures in full at the end, then the counts. What the test files
// print (component logs, mostly) goes to one log file per test file under $AMBIT_TEST_LOG_DIR
// instead of the terminal; a failing file's log is named, and its last lines printed, with the
// failure it explains.
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { inspect } from 'node:util';

const LOG_DIR = process.env.AMBIT_TEST_LOG_DIR ?? join(process.cwd(), 'test-logs');
const ROOT = process.cwd();
/** Lines of a failing file's log printed with its failures; the whole log stays in its file. */
const TAIL_LINES = Number(process.env.AMBIT_TEST_LOG_TAIL ?? 80);

mkdirSync(LOG_DIR, { recursive: true });

const rel = (file) => (file ? relative(ROOT, file) : '(unknown file)');
const logFileOf = (file) => join(LOG_DIR, `${rel(file).replaceAll('/', '__')}.log`);

function tail(path, lines) {
  let text;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const all = text.split('\n');
  if (all.at(-1) === '') all.pop();
  return { lines: all.slice(-lines), skipped: Math.max(0, all.length - lines) };
}

function indent(text, by = '    ') {
  return text
    .split('\n')
    .map((l) => (l ? by + l : l))
    .join('\n');
}

/** The assertion or error that failed the test, without the runner's wrapper. */
function describeError(error) {
  const cause =
    error?.failureType === 'testCodeFailure' || error?.code === 'ERR_TEST_FAILURE'
      ? (error.cause ?? error)
      : error;
  return inspect(cause, { colors: false, depth: 6, breakLength: 100 });
}

const seconds = (ms) => `${((ms ?? 0) / 1000).toFixed(1)}s`;

export default async function* report(source) {
  const counts = { pass: 0, fail: 0, cancelled: 0, skipped: 0, todo: 0 };
  const failures = [];
  const logged = new Set();
  /** Names of the enclosing suites, by file and nesting, to print a failure's full path. */
  const open = new Map();
  const started = Date.now();

  for await (const { type, data } of source) {
    switch (type) {
      case 'test:stdout':
      case 'test:stderr': {
        appendFileSync(logFileOf(data.file), data.message);
        logged.add(data.file);
        break;
      }
      case 'test:start': {
        const key = data.file ?? '';
        const path = open.get(key) ?? [];
        path.length = data.nesting;
        path.push(data.name);
        open.set(key, path);
        break;
      }
      case 'test:pass':
      case 'test:fail': {
        const isSuite = data.details?.type === 'suite';
        const error = data.details?.error;
        const cancelled = error?.failureType === 'cancelledByParent';
        if (!isSuite) {
          if (type === 'test:pass') {
            if (data.skip !== undefined) counts.skipped++;
            else if (data.todo !== undefined) counts.todo++;
            else counts.pass++;
          } else if (cancelled) counts.cancelled++;
          else counts.fail++;
        }
        const path = [...(open.get(data.file ?? '') ?? []).slice(0, data.nesting), data.name];
        // A suite fails because a test in it did (reported on its own), or by itself (a hook threw).
        const ownFailure = type === 'test:fail' && !cancelled && error?.failureType !== 'subtestsFailed';
        if (ownFailure) {
          failures.push({ file: data.file, path, error, duration: data.details?.duration_ms });
          yield `✖ ${rel(data.file)} › ${path.join(' › ')} (${seconds(data.details?.duration_ms)})\n`;
        } else if (data.nesting === 0) {
          const mark = type === 'test:pass' ? '✔' : '✖';
          yield `${mark} ${rel(data.file)} › ${data.name} (${seconds(data.details?.duration_ms)})\n`;
        }
        break;
      }
      default:
        break;
    }
  }

  if (failures.length > 0) {
    yield `\n${'='.repeat(30)} ${failures.length} failure(s) ${'='.repeat(30)}\n`;
    const tailed = new Set();
    for (const [i, f] of failures.entries()) {
      yield `\n${i + 1}) ${rel(f.file)}\n   ${f.path.join(' › ')} (${seconds(f.duration)})\n\n`;
      yield `${indent(describeError(f.error))}\n`;
      // The file's output once, with its first failure: the log lines that explain it.
      if (f.file && !tailed.has(f.file)) {
        tailed.add(f.file);
        const t = logged.has(f.file) ? tail(logFileOf(f.file), TAIL_LINES) : undefined;
        if (t && t.lines.length > 0) {
          yield `\n   output of ${rel(f.file)} (${t.skipped > 0 ? `last ${t.lines.length} lines; ` : ''}all of it in ${logFileOf(f.file)}):\n`;
          yield `${indent(t.lines.join('\n'), '   | ')}\n`;
        }
      }
    }
  }
  const total = counts.pass + counts.fail + counts.cancelled + counts.skipped + counts.todo;
  yield `\ntests ${total}  pass ${counts.pass}  fail ${counts.fail}  cancelled ${counts.cancelled}  skipped ${counts.skipped}  todo ${counts.todo}  (${seconds(Date.now() - started)})\n`;
  if (counts.fail + counts.cancelled > 0)
    yield `test output (component logs), one file per test file: ${LOG_DIR}\n`;
}
