/**
 * A bounded tcpdump inside a network namespace (the demo's and the tests' wire captures): started before the traffic it should see
 * (resolves once tcpdump says it listens), stopped after it, the pcap collected from its stdout.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { labError } from './errors.js';

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5000;
/** Stop once tcpdump wrote nothing for this long (it writes each packet at once), or after SETTLE_MAX_MS. */
const QUIET_MS = 250;
const SETTLE_MAX_MS = 2000;
const CAPTURE_BUFFER_KIB = 65_536;
/** Even if the caller never stops it, tcpdump does not outlive this. */
const MAX_CAPTURE_MS = 30_000;

export interface Capture {
  /** Stops tcpdump and returns the pcap bytes it wrote. */
  stop(): Promise<Buffer>;
  /** How many pcap bytes tcpdump wrote so far (24 = the file header only), to wait for a packet before stop(). */
  captured(): number;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('close', () => resolve());
  });
}

export async function startCapture(netns: string, iface: string, filter: string): Promise<Capture> {
  // --immediate-mode: without it packets sit in the kernel's ring until a 1 s block timeout, after the stop.
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      netns,
      'tcpdump',
      '-i',
      iface,
      '-nn',
      '--immediate-mode',
      // A large kernel ring (KiB): with the default 2 MiB a loaded machine drops packets of a bulk transfer.
      '-B',
      String(CAPTURE_BUFFER_KIB),
      '-U',
      '-s',
      '0',
      '-w',
      '-',
      filter,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const chunks: Buffer[] = [];
  let stderr = '';
  let lastData = Date.now();
  child.stdout!.on('data', (c: Buffer) => {
    chunks.push(c);
    lastData = Date.now();
  });
  child.stderr!.setEncoding('utf8');
  const guard = setTimeout(() => child.kill('SIGKILL'), MAX_CAPTURE_MS);
  const done = exited(child).then(() => clearTimeout(guard));

  await new Promise<void>((resolve, reject) => {
    const fail = (why: string) => {
      child.kill('SIGKILL');
      reject(labError('LAB_CAPTURE_FAILED', `tcpdump in ${netns} ${why}: ${stderr.trim()}`));
    };
    const timer = setTimeout(() => fail(`did not start within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      fail(`could not run (${err.message}; apt-get install tcpdump)`);
    });
    const onClose = () => {
      clearTimeout(timer);
      fail('exited before capturing');
    };
    child.on('close', onClose);
    child.stderr!.on('data', (d: string) => {
      stderr += d;
      if (stderr.includes('listening on')) {
        clearTimeout(timer);
        child.off('close', onClose);
        resolve();
      }
    });
  });

  return {
    captured: () => chunks.reduce((n, c) => n + c.length, 0),
    async stop() {
      // tcpdump drops what it has not read from the kernel yet when interrupted: let it go quiet first.
      const settleUntil = Date.now() + SETTLE_MAX_MS;
      while (Date.now() - lastData < QUIET_MS && Date.now() < settleUntil) await sleep(20);
      child.kill('SIGINT');
      const killer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await done;
      clearTimeout(killer);
      // A capture with holes proves nothing about what crossed the wire: say so instead of returning it.
      const dropped = /(\d+) packets? dropped by kernel/.exec(stderr);
      if (dropped && Number(dropped[1]) > 0) {
        throw labError(
          'LAB_CAPTURE_INCOMPLETE',
          `tcpdump in ${netns} lost ${dropped[1]} packet(s) (the machine is too loaded to capture everything); run the capture again`,
        );
      }
      return Buffer.concat(chunks);
    },
  };
}
