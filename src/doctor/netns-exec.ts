/** Runs a read-only tool (ss, iptables-save) inside a network namespace via `nsenter --net=`. */
import { execFile } from 'node:child_process';
import { doctorError } from './errors.js';

const TIMEOUT_MS = 10_000;

/** Stdout of `cmd args` in `netns` (null = ours); a non-zero exit is an ERR_DOCTOR_EXEC with stderr. */
export function execIn(netns: string | null, cmd: string, args: string[]): Promise<string> {
  const argv = netns === null ? [cmd, ...args] : ['nsenter', `--net=${netns}`, cmd, ...args];
  return new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), { timeout: TIMEOUT_MS, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        reject(
          doctorError('ERR_DOCTOR_EXEC', `${argv.join(' ')} failed: ${stderr.trim() || err.message}`, {
            cause: err,
          }),
        );
      } else resolve(stdout);
    });
  });
}
