/**
 * The demo's printed walkthrough: numbered steps with a short explanation from the seed, the
 * command a user would type, its output, and an assertion per step. A step that does not hold
 * becomes DEMO_STEP_FAILED naming the step.
 */
import { errorMessage } from '../errors.js';
import { demoError } from './errors.js';

export class Walkthrough {
  #step = 0;

  constructor(readonly write: (text: string) => void) {}

  /** Runs one numbered step; its failure names it. */
  async step<T>(title: string, explanation: string, run: () => Promise<T>): Promise<T> {
    this.#step++;
    const n = this.#step;
    this.write(`\n== Step ${n}: ${title} ==\n`);
    if (explanation) this.write(`${wrap(explanation, 96)}\n`);
    try {
      return await run();
    } catch (err) {
      throw demoError('DEMO_STEP_FAILED', `step ${n} (${title}) failed: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  }

  heading(title: string): void {
    this.write(`\n== ${title} ==\n`);
  }

  /** The command a user would type to see the same thing. */
  command(text: string): void {
    this.write(`\n$ ${text}\n`);
  }

  /** Lines of output, indented so they stand apart from the explanations. */
  output(text: string): void {
    const lines = text.replace(/\n+$/, '').split('\n');
    this.write(`${lines.map((l) => `  ${l}`).join('\n')}\n`);
  }

  line(text: string): void {
    this.write(`${text}\n`);
  }
}

/** Throws DEMO_CHECK_FAILED with `message` unless `condition` holds. */
export function expect(condition: unknown, message: string): asserts condition {
  if (!condition) throw demoError('DEMO_CHECK_FAILED', message);
}

function wrap(text: string, width: number): string {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) out.push(line);
  return out.join('\n');
}
