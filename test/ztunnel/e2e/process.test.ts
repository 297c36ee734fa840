/**
 * The real `ambit ztunnel` process, run in its own netns, with this test as the node agent
 * (ZdsServer). Pod A (the seed's rules applied) is enrolled over ZDS; its peer B is a plain netns
 * with an echo app on 8000 and a service VIP (from the LOCAL_XDS_PATH file) mapping :80 to it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createRedirector } from '../../../src/redirect/index.js';
import { connected, connectInNetns, listenInNetns, NetnsHandle } from '../../../src/sys/index.js';
import { type SnapshotPod, type WorkloadUid, workloadUid, ZdsServer } from '../../../src/zds/index.js';
import { run, TestNetns, uniqueSubnet, VethPair } from '../../helpers/netns.js';
import { eventually, httpIn, httpWhenUp, ZtunnelCli } from '../../ztunnel/fixtures/ztunnel-cli.js';

const INFO = { name: 'client', namespace: 'default', serviceAccount: 'default' };
const SERVICE = 'echo.default.svc.cluster.local';

/** Writes `payload` and resolves once the same number of bytes came back. */
function echo(socket: Socket, payload: Buffer | string): Promise<Buffer> {
  const want = Buffer.from(payload);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got >= want.length) {
        socket.off('data', onData);
        socket.off('error', reject);
        socket.off('close', onClose);
        resolve(Buffer.concat(chunks));
      }
    };
    const onClose = () => reject(new Error(`closed after ${got} of ${want.length} bytes`));
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', onClose);
    socket.write(want);
  });
}

function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });
}

describe('the ambit ztunnel process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-ztp-'));
  const uds = join(dir, 'ztunnel.sock');
  const xds = join(dir, 'local.yaml');
  const vip = uniqueSubnet().host(100);
  const uid: WorkloadUid = workloadUid('uid-client');
  const procs: ZtunnelCli[] = [];
  const nets: TestNetns[] = [];
  const handles: NetnsHandle[] = [];
  let pair: VethPair;
  let a: NetnsHandle;
  let app: Server;
  const appSockets = new Set<Socket>();
  let zds: ZdsServer;
  let snapshot: SnapshotPod[] = [];
  let openGate: () => void = () => {};
  const gate: Promise<void> = new Promise((r) => {
    openGate = r;
  });

  /** A ztunnel process in a netns of its own (as a new ztunnel pod would have). */
  const ztunnel = (extra: string[] = []) => {
    const ns = new TestNetns();
    nets.push(ns);
    const handle = NetnsHandle.open(ns.path);
    handles.push(handle);
    const args = ['--inpod-uds', uds, '--local-xds-path', xds, '--connection-termination-deadline', '1s'];
    const proc = new ZtunnelCli([...args, ...extra], { netns: ns.name });
    procs.push(proc);
    return { proc, handle, ns };
  };
  const dial = async (host: string, port: number) => {
    const s = await connected(connectInNetns(a, { host, port }));
    s.on('error', () => {});
    return s;
  };
  const listeners = () => run('ip', ['netns', 'exec', pair.a.name, 'ss', '-Hntlp']);

  let z1: ReturnType<typeof ztunnel>;
  let validXds = '';

  before(async () => {
    pair = new VethPair();
    a = NetnsHandle.open(pair.a.path);
    handles.push(a);
    pair.b.exec('ip', ['addr', 'add', `${vip}/32`, 'dev', 'lo']);
    pair.a.exec('ip', ['route', 'add', `${vip}/32`, 'via', pair.addrB]);
    validXds = [
      'workloads:',
      '  - name: peer',
      '    namespace: default',
      `    workloadIps: ["${pair.addrB}"]`,
      '    protocol: TCP',
      '    services:',
      `      "default/${SERVICE}":`,
      '        80: 8000',
      'services:',
      '  - name: echo',
      '    namespace: default',
      `    hostname: ${SERVICE}`,
      `    vips: ["/${vip}"]`,
      '    ports:',
      '      80: 8000',
      '',
    ].join('\n');
    writeFileSync(xds, validXds);
    const b = NetnsHandle.open(pair.b.path);
    app = await listenInNetns(b, { port: 8000, host: '::', backlog: 1024 });
    b.close();
    app.on('connection', (s: Socket) => {
      appSockets.add(s);
      s.once('close', () => appSockets.delete(s));
      s.on('error', () => {});
      s.pipe(s);
    });
    await createRedirector({ backend: 'iptables', inbound: 'tproxy' }).apply(a, [pair.addrA]);
    zds = ZdsServer.listen({
      path: uds,
      // The first snapshot waits for the test, so readiness can be seen before it.
      pods: {
        snapshot: async () => {
          await gate;
          return snapshot;
        },
      },
    });
    z1 = ztunnel();
  });

  after(async () => {
    for (const p of procs) p.signal('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    zds?.close();
    for (const s of appSockets) s.destroy();
    await new Promise((r) => (app ? app.close(r) : r(undefined)));
    for (const h of handles) h.close();
    for (const n of nets) n.remove();
    pair?.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  test('start-up prints the seed in-pod lines, then connects to the agent', async () => {
    await z1.proc.waitFor(/handling new stream/);
    const inpod = z1.proc.lines.filter((l) => l.includes('inpod'));
    assert.deepEqual(inpod.slice(0, 4), [
      'inpod_enabled: true',
      `inpod_uds: ${uds}`,
      'inpod_port_reuse: true',
      'inpod_mark: 1337',
    ]);
    assert.match(
      z1.proc.lines.join('\n'),
      /inpod_mark: 1337\n.*INFO ztunnel::inpod::workloadmanager: handling new stream/s,
    );
  });

  test('readiness is 503 until the ZDS snapshot is processed, then 200', async () => {
    await eventually('the hello', () => zds.connectionCount === 1);
    const before = await httpWhenUp(z1.handle, 15021, '/healthz/ready');
    assert.equal(before.status, 503);
    assert.equal(before.body, 'not ready, pending: workload proxy manager\n');
    openGate();
    await eventually('ready', async () => (await httpIn(z1.handle, 15021, '/healthz/ready')).status === 200);
    assert.equal((await httpIn(z1.handle, 15021, '/healthz/ready')).body, 'ready\n');
    await z1.proc.waitFor(/INFO ztunnel::inpod::statemanager: pod received snapshot sent/);
  });

  test("after enrollment the pod lists the seed four listeners and the DNS proxy's, owned by the ztunnel process", async () => {
    await zds.addWorkload(uid, INFO, a);
    snapshot = [{ uid, info: INFO, netns: a }];
    await z1.proc.waitFor(
      /INFO ztunnel::inpod::statemanager: pod WorkloadUid\("uid-client"\) received netns, starting proxy/,
    );
    const out = listeners();
    // DNS_CAPTURE is on by default (as in Istio): its TCP half on the pod's loopback, both families.
    const loopbackV6 = pair.a.exec('cat', ['/proc/sys/net/ipv6/conf/lo/disable_ipv6']).trim() === '0';
    const expected = ['*:15001', '*:15006', '*:15008', '127.0.0.1:15080', '127.0.0.1:15053'];
    if (loopbackV6) expected.push('[::1]:15053');
    for (const addr of expected) {
      const line = out.split('\n').find((l) => l.includes(` ${addr} `));
      assert.ok(line, `${addr} in:\n${out}`);
      // Named after its role, as the seed's `ss -ntlp` shows Istio's: ("ztunnel",pid=...), not ("node",...).
      assert.match(line, new RegExp(`users:\\(\\("ztunnel",pid=${z1.proc.pid},`));
    }
    assert.equal(readFileSync(`/proc/${z1.proc.pid}/comm`, 'utf8'), 'ztunnel\n');
    // Only the name changed: the command line (which the lab reads to find its processes) is intact.
    assert.match(readFileSync(`/proc/${z1.proc.pid}/cmdline`, 'utf8'), /\0ztunnel\0--inpod-uds\0/);
    assert.equal(out.trim().split('\n').length, expected.length, out);
    // Set for hand-over: queued connections move to the successor's listener instead of being reset.
    assert.equal(pair.a.exec('sysctl', ['-n', 'net.ipv4.tcp_migrate_req']).trim(), '1');
  });

  test('traffic from the pod is proxied, access-logged and counted on /metrics and /stats/prometheus', async () => {
    const s = await dial(pair.addrB, 8000);
    assert.equal((await echo(s, 'x'.repeat(11))).toString(), 'x'.repeat(11));
    s.end();
    await closed(s);
    const [log] = await z1.proc.waitFor(/\tinfo\taccess\tconnection complete\t.*direction="outbound"/);
    assert.match(log!, new RegExp(`src\\.addr=${pair.addrA}:\\d+ dst\\.addr=${pair.addrB}:8000 `));
    assert.match(log!, /bytes_sent=11 bytes_recv=11 duration="\d+ms"/);
    for (const path of ['/metrics', '/stats/prometheus']) {
      const m = await httpIn(z1.handle, 15020, path);
      assert.equal(m.status, 200);
      assert.match(m.body, /^istio_tcp_connections_opened_total\{reporter="source"[^}]*\} 1$/m);
      assert.match(m.body, /^istio_tcp_received_bytes_total\{reporter="source"[^}]*\} 11$/m);
      assert.match(m.body, /^workload_manager_active_proxy_count 1$/m);
      assert.match(m.body, /^workload_manager_pending_proxy_count 0$/m);
      assert.match(m.body, /^workload_manager_proxies_started_total 1$/m);
      assert.match(m.body, /^workload_manager_proxies_stopped_total 0$/m);
    }
  });

  test('a malformed LOCAL_XDS_PATH file is rejected with its path and the previous state is kept', async () => {
    const viaVip = async (n: number) => {
      const s = await dial(vip, 80);
      assert.equal((await echo(s, 'via service')).toString(), 'via service');
      s.destroy();
      await z1.proc.waitFor(
        new RegExp(`connection complete\t.*dst\\.addr=${pair.addrB}:8000 dst\\.service="${SERVICE}"`),
        n,
      );
    };
    await viaVip(1);
    writeFileSync(xds, 'workloads:\n  - name: peer\n    namespace: default\n    protocl: TCP\n');
    const [rejected] = await z1.proc.waitFor(/ERROR ztunnel::state: rejected local workload config/);
    assert.ok(rejected!.includes(xds), rejected);
    assert.ok(rejected!.includes('workloads[0].protocl'), rejected);
    // The VIP is still routed to the service's endpoint; without the state it would be passthrough to VIP:80 (closed).
    await viaVip(2);
    writeFileSync(xds, validXds);
    await z1.proc.waitFor(/INFO ztunnel::state: loaded local workload config/, 2);
  });

  test('hand-over: a second ztunnel takes the pod, the first drains (SIGTERM) and exits 0, no new connection fails; then Del and POST /quitquitquit on the second', async () => {
    const held = await dial(pair.addrB, 8000); // accepted by the first ztunnel: only it is listening
    assert.equal((await echo(held, 'before')).toString(), 'before');
    const z2 = ztunnel();
    await eventually('the second ztunnel ready', async () => {
      try {
        return (await httpIn(z2.handle, 15021, '/healthz/ready')).status === 200;
      } catch {
        return false;
      }
    });
    await z2.proc.waitFor(/pod WorkloadUid\("uid-client"\) received netns, starting proxy/);
    const both = listeners()
      .split('\n')
      .filter((l) => l.includes('*:15001 '));
    assert.equal(both.length, 2, `both ztunnels listen on 15001:\n${both.join('\n')}`);

    const failures: string[] = [];
    let attempts = 0;
    let stop = false;
    const loop = (async () => {
      for (let i = 0; i < 3000 && !stop; i++) {
        attempts++;
        try {
          const s = await dial(pair.addrB, 8000);
          const got = await echo(s, `ping ${i}`);
          if (got.toString() !== `ping ${i}`) failures.push(`attempt ${i}: got ${got}`);
          s.destroy();
        } catch (err) {
          failures.push(`attempt ${i}: ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    try {
      await new Promise((r) => setTimeout(r, 100));
      z1.proc.signal('SIGTERM');
      await z1.proc.waitFor(/INFO ztunnel::app: shutting down: draining pod proxies reason=SIGTERM/);
      // Draining, not cut: the held connection still works until the deadline.
      assert.equal((await echo(held, 'during drain')).toString(), 'during drain');
      const exit = await z1.proc.exited;
      assert.deepEqual(exit, { code: 0, signal: null });
      await closed(held); // cut at the 1 s deadline
      const atExit = attempts;
      await eventually('20 more attempts after the exit', () => attempts >= atExit + 20);
    } finally {
      stop = true;
      await loop;
    }
    assert.deepEqual(failures, []);
    assert.ok(z1.proc.matching(/INFO ztunnel::app: shutdown complete/).length === 1);
    const left = listeners()
      .split('\n')
      .filter((l) => l.includes('*:15001 '));
    assert.equal(left.length, 1);
    assert.match(left[0]!, new RegExp(`pid=${z2.proc.pid},`));

    // Del goes to every connected ztunnel: the pod's listeners close and its connections are cut.
    const s = await dial(pair.addrB, 8000);
    assert.equal((await echo(s, 'last')).toString(), 'last');
    await zds.delWorkload(uid);
    snapshot = [];
    await closed(s);
    await z2.proc.waitFor(/pod delete request, draining proxy/);
    assert.doesNotMatch(listeners(), /:1500[168]\b|:15080\b/);
    assert.match(
      (await httpIn(z2.handle, 15020, '/metrics')).body,
      /^workload_manager_proxies_stopped_total 1$/m,
    );

    // The admin's POST /quitquitquit shuts down as SIGTERM does.
    assert.equal((await httpIn(z2.handle, 15000, '/quitquitquit')).status, 405);
    assert.deepEqual(await httpIn(z2.handle, 15000, '/quitquitquit', 'POST'), { status: 200, body: 'OK\n' });
    assert.deepEqual(await z2.proc.exited, { code: 0, signal: null });
    assert.equal(
      z2.proc.matching(/shutting down: draining pod proxies reason="POST \/quitquitquit"/).length,
      1,
    );
  });

  test('a second SIGINT during the drain exits at once', async () => {
    const z3 = ztunnel(['--connection-termination-deadline', '10m']);
    await eventually('the agent connection', () => zds.connectionCount === 1);
    await eventually('ready', async () => {
      try {
        return (await httpIn(z3.handle, 15021, '/healthz/ready')).status === 200;
      } catch {
        return false;
      }
    });
    await zds.addWorkload(uid, INFO, a);
    const s = await dial(pair.addrB, 8000);
    assert.equal((await echo(s, 'hold')).toString(), 'hold');
    z3.proc.signal('SIGINT');
    await z3.proc.waitFor(/shutting down: draining pod proxies reason=SIGINT/);
    z3.proc.signal('SIGINT');
    assert.deepEqual(await z3.proc.exited, { code: 130, signal: null });
    assert.equal(
      z3.proc.matching(/WARN ztunnel::app: received second signal, exiting immediately/).length,
      1,
    );
    await closed(s);
  });

  test('start-up is refused naming the missing capability', async () => {
    for (const [cap, name] of [
      ['sys_admin', 'CAP_SYS_ADMIN'],
      // SO_MARK is allowed with either capability (Linux ≥5.17 accepts CAP_NET_RAW).
      ['net_admin,-net_raw', 'CAP_NET_ADMIN'],
    ] as const) {
      const ns = new TestNetns();
      nets.push(ns);
      const proc = new ZtunnelCli(['--inpod-uds', uds], {
        netns: ns.name,
        wrap: ['setpriv', `--inh-caps=-${cap}`, `--bounding-set=-${cap}`],
      });
      procs.push(proc);
      const timer = setTimeout(() => proc.signal('SIGKILL'), 15_000);
      const exit = await proc.exited;
      clearTimeout(timer);
      assert.deepEqual(exit, { code: 1, signal: null }, proc.stderr);
      assert.match(
        proc.stderr,
        new RegExp(`ambit ztunnel: .*make sure ztunnel has ${name}.*\\[ERR_CAPABILITY\\]`),
      );
      assert.ok(!proc.lines.some((l) => l.startsWith('inpod_enabled')), 'refused before anything started');
    }
  });

  test('LOG_FORMAT=json: every line ztunnel prints is one JSON object with level, time, scope and message', async () => {
    const ns = new TestNetns();
    nets.push(ns);
    // No agent at this socket: ztunnel starts, then logs its retries, all of it as JSON.
    const proc = new ZtunnelCli(['--inpod-uds', join(dir, 'no-agent.sock')], {
      netns: ns.name,
      env: { LOG_FORMAT: 'json' },
    });
    procs.push(proc);
    await proc.waitFor(/"message":"shared proxy mode - in-pod mode enabled"/);
    await proc.waitFor(/"scope":"ztunnel::inpod/);
    proc.signal('SIGTERM');
    await proc.exited;
    const lines = proc.lines.filter((l) => l.trim() !== '');
    assert.ok(lines.length >= 2, lines.join('\n'));
    for (const line of lines) {
      const o = JSON.parse(line) as Record<string, unknown>;
      assert.deepEqual(Object.keys(o).slice(0, 4), ['level', 'time', 'scope', 'message'], line);
      assert.match(String(o['level']), /^(error|warn|info|debug|trace)$/, line);
      assert.match(String(o['time']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, line);
    }
  });
});
