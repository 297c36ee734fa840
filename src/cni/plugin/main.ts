/**
 * Entry of the `ambit-cni` executable (bundled by scripts/build-cni.mjs). stdout carries only the
 * CNI result or error; logs go to stderr as JSON lines.
 */
import { pluginLog } from './log.js';
import { runPlugin } from './run.js';

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

// No top-level await: the bundle is CommonJS so it runs from any directory (no package.json needed).
readStdin()
  .then((stdin) => runPlugin(process.env, stdin, pluginLog()))
  .then((outcome) => {
    if (outcome.stdout) process.stdout.write(`${outcome.stdout}\n`);
    process.exitCode = outcome.exitCode;
  });
