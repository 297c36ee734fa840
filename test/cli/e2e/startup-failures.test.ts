/**
 * A long-running component that cannot start must exit at once, non-zero, saying why (issue 12,
 * point 4): the real `ambit ztunnel`, `ambit agent` and `ambit control-plane` processes, each with
 * one of its ports already taken by a listener that accepts and never answers (as a leftover
 * process would). Before the fix ztunnel logged EADDRINUSE and then stayed up, held by its xDS
 * client's reconnects, looking "up" to its supervisor.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type ApiServer, startApiServer } from '../../../src/lab/apiserver/index.js';
import { listenInNetns, NetnsHandle } from '../../../src/sys/index.js';
import { TestNetns } from '../../helpers/netns.js';

const MAIN = new URL('../../../src/cli/main.js', import.meta.url).href;
const ENTRY = `const { main } = await import(${JSON.stringify(MAIN)}); process.exitCode = await main(process.argv.slice(1));`;
/** Generous: exiting takes well under a second on an idle machine; this one may be loaded. */
const EXIT_DEADLINE_MS = 30_000;

interface Outcome {
  /** undefined: still running at the deadline (then killed). */
  code: number | null | undefined;
  signal: NodeJS.Signals | null;
  output: string;
}

/** Runs `ambit <args>` (inside `netns` when given) and waits for it to exit, at most the deadline. */
async function runUntilExit(args: string[], netns?: string): Promise<Outcome> {
  const cmd = [
    ...(netns ? ['ip', 'netns', 'exec', netns] : []),
    process.execPath,
    '--input-type=module',
    '-e',
    ENTRY,
    ...args,
  ];
  const child: ChildProcess = spawn(cmd[0]!, cmd.slice(1), {
    env: { ...process.env, RUST_LOG: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    output += d;
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    output += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'deadline'>((resolve) => {
    timer = setTimeout(() => resolve('deadline'), EXIT_DEADLINE_MS);
  });
  const first = await Promise.race([exited, deadline]);
  clearTimeout(timer);
  if (first === 'deadline') {
    child.kill('SIGKILL');
    await exited;
    return { code: undefined, signal: null, output };
  }
  return { ...first, output };
}

function assertExitedWithReason(o: Outcome, reason: RegExp): void {
  assert.notEqual(
    o.code,
    undefined,
    `still running ${EXIT_DEADLINE_MS / 1000} s after start-up failed; its output:\n${o.output}`,
  );
  assert.equal(o.signal, null, o.output);
  assert.notEqual(o.code, 0, o.output);
  assert.match(o.output, reason);
}

/** A listener that accepts and never answers, holding `port` in the netns (null = this one). */
class PortHolder {
  readonly #sockets = new Set<Socket>();
  private constructor(readonly server: Server) {
    server.on('connection', (s: Socket) => {
      this.#sockets.add(s);
      s.on('error', () => {});
      s.once('close', () => this.#sockets.delete(s));
    });
  }

  static async hold(netns: NetnsHandle | null, host: string, port: number): Promise<PortHolder> {
    return new PortHolder(await listenInNetns(netns, { host, port }));
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

describe('start-up failures end the process at once with the reason', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-startfail-'));
  const nets: TestNetns[] = [];
  const handles: NetnsHandle[] = [];
  const holders: PortHolder[] = [];

  /** A fresh netns (loopback up) with `port` taken on all addresses. */
  const netnsWithTakenPort = async (port: number) => {
    const ns = new TestNetns();
    nets.push(ns);
    const handle = NetnsHandle.open(ns.path);
    handles.push(handle);
    holders.push(await PortHolder.hold(handle, '::', port));
    return ns;
  };

  after(async () => {
    await Promise.all(holders.map((h) => h.close()));
    for (const h of handles) h.close();
    for (const n of nets) n.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  // Configured as in the lab: workloads and certificates from a control plane (unreachable here,
  // so its client keeps reconnecting: the handle that used to keep the failed process alive).
  const ztunnelArgs = () => [
    'ztunnel',
    ...['--inpod-uds', join(dir, `zt-${nets.length}.sock`)],
    ...['--xds-address', 'https://127.0.0.1:1', '--xds-root-ca', 'SYSTEM'],
    ...['--ca-address', 'https://127.0.0.1:1', '--ca-root-ca', 'SYSTEM'],
    ...['--auth-token', 'not-a-real-token'],
  ];

  for (const [name, port, shown] of [
    ['readiness', 15021, '\\[::\\]:15021'],
    ['admin', 15000, 'localhost:15000'],
    ['metrics', 15020, '\\[::\\]:15020'],
  ] as const) {
    test(`ztunnel: ${name} port ${port} taken -> exits non-zero naming the port and EADDRINUSE`, async () => {
      const ns = await netnsWithTakenPort(port);
      const o = await runUntilExit(ztunnelArgs(), ns.name);
      assertExitedWithReason(o, new RegExp(`cannot serve ${name} on ${shown}: EADDRINUSE`));
    });
  }

  test('agent: health port 8000 taken -> exits non-zero naming the port and EADDRINUSE', async () => {
    const ns = await netnsWithTakenPort(8000);
    const o = await runUntilExit(
      [
        'agent',
        ...['--node-name', 'n1', '--run-dir', join(dir, 'agent-run')],
        ...['--zds-socket', join(dir, 'agent-zds.sock'), '--host-netns', ns.path],
      ],
      ns.name,
    );
    assertExitedWithReason(o, /cannot serve health on \[::\]:8000: EADDRINUSE/);
  });

  test('agent: metrics port 15014 taken -> exits non-zero naming the port and EADDRINUSE', async () => {
    const ns = await netnsWithTakenPort(15014);
    const o = await runUntilExit(
      [
        'agent',
        ...['--node-name', 'n1', '--run-dir', join(dir, 'agent-run2')],
        ...['--zds-socket', join(dir, 'agent-zds2.sock'), '--host-netns', ns.path],
      ],
      ns.name,
    );
    assertExitedWithReason(o, /cannot serve metrics on \[::\]:15014: EADDRINUSE/);
  });

  describe('control plane', () => {
    let api: ApiServer;
    before(async () => {
      api = await startApiServer({ kubeconfigPath: join(dir, 'kubeconfig') });
    });
    after(async () => {
      await api?.close();
    });

    test('its gRPC port taken -> exits non-zero naming the address and EADDRINUSE', async () => {
      const holder = await PortHolder.hold(null, '127.0.0.1', 0);
      holders.push(holder);
      const o = await runUntilExit([
        'control-plane',
        ...['--kubeconfig', join(dir, 'kubeconfig'), '--ca-dir', join(dir, 'ca')],
        ...['--listen', `127.0.0.1:${holder.port}`],
      ]);
      assertExitedWithReason(o, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${holder.port}: .*EADDRINUSE`));
    });
  });
});
