/**
 * A broken HBONE tunnel between `ambit ztunnel` processes on two lab nodes must reach the applications
 * as a TCP reset, as a broken direct connection would, and be logged as an error; a clean transfer
 * still ends with FIN and an INFO access log line. The peer ztunnel is stopped (SIGSTOP: its kernel
 * keeps the connection open, so only the HTTP/2 keepalive notices) or killed (SIGKILL) mid-transfer.
 * The keepalive is shortened with --hbone-keepalive-interval/-timeout so the test does not wait 30 s.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Capture, startCapture } from '../../../src/lab/capture.js';
import { type LabPod, type LabState, labDown, labUp } from '../../../src/lab/index.js';
import { connected, connectInNetns, listenInNetns, NetnsHandle } from '../../../src/sys/index.js';
import { parsePcap } from '../../hbone/pcap.js';
import { readAll, sha256, waitFor } from '../../helpers/bytes.js';
import { LabMesh, type LabMeshNode } from '../../helpers/lab-mesh.js';
import { uniqueLabCidrs } from '../../helpers/netns.js';
import { within } from '../../helpers/wait.js';

const SINK_PORT = 8000;
const ECHO_PORT = 8001;
const CHUNK = 64 * 1024;
// The most a pump writes, so a transfer that is never cut still ends.
const PUMP_LIMIT = 1024 * 1024 * 1024;
// Keepalive 1 s / 2 s: a stopped peer is noticed within ~3 s; the deadlines allow a loaded machine.
const KEEPALIVE = ['--hbone-keepalive-interval', '1s', '--hbone-keepalive-timeout', '2s'];
const DEADLINE_MS = 60_000;
const PCAP_HEADER = 24;
const FIN_OR_RST = `tcp port ${SINK_PORT} and tcp[tcpflags] & (tcp-fin|tcp-rst) != 0`;

/** How an app's end of a connection finished: after how many bytes, by EOF or by which error. */
interface End {
  bytes: number;
  end: string;
}

function observe(socket: Socket): Promise<End> {
  return new Promise((resolve) => {
    let bytes = 0;
    socket.on('data', (d: Buffer) => {
      bytes += d.length;
    });
    socket.once('end', () => resolve({ bytes, end: 'EOF' }));
    socket.once('error', (e: NodeJS.ErrnoException) => resolve({ bytes, end: e.code ?? e.message }));
    socket.once('close', () => resolve({ bytes, end: 'closed without EOF or error' }));
  });
}

/** Writes until `limit` bytes, the socket closes, or it errors; returns how much it wrote. */
function pump(socket: Socket): { written(): number } {
  let written = 0;
  const chunk = randomBytes(CHUNK);
  const more = () => {
    while (written < PUMP_LIMIT && !socket.destroyed && socket.writable) {
      written += chunk.length;
      if (!socket.write(chunk)) {
        socket.once('drain', more);
        return;
      }
    }
  };
  more();
  return { written: () => written };
}

/**
 * How the connection to the server app was ended on the wire: the first FIN or RST sent to it. The app's own
 * view is not enough: libuv reports EOF instead of ECONNRESET when a reset arrives while the app still has
 * unread data (a POLLHUP after a short read), which a busy sink does.
 */
async function endOnTheWire(capture: Capture, appPort: number): Promise<string> {
  // The app saw its end, so the segment passed the capture point: wait until tcpdump wrote it out (after the
  // 24-byte file header), since stopping tcpdump drops what it has not read yet.
  await waitFor(() => capture.captured() > PCAP_HEADER, 'the capture of the FIN or RST', DEADLINE_MS).catch(
    () => {},
  );
  const { segments } = parsePcap(await capture.stop());
  const first = segments.find((x) => x.dport === appPort && (x.fin || x.rst));
  return first ? (first.rst ? 'RST' : 'FIN') : 'neither FIN nor RST';
}

describe('a broken HBONE tunnel between ztunnel processes reaches the apps as a reset', () => {
  const lab = `tb${randomBytes(4).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'ambit-ztb-'));
  const handles: NetnsHandle[] = [];
  const apps: Server[] = [];
  /** Every connection the apps accepted, destroyed before the apps close. */
  const accepted: Socket[] = [];
  /** How each connection the sink app accepted ended, in accept order. */
  const sinkEnds: Array<Promise<End>> = [];
  const sinkBytes: Array<() => number> = [];
  let state: LabState;
  let mesh: LabMesh | undefined;
  let client: LabPod;
  let server: LabPod;
  let clientNetns: NetnsHandle;
  const pod = (name: string) => state.pods.find((p) => p.name === name)!;
  const node = (name: string): LabMeshNode => mesh!.nodes.get(name)!;
  /** The component logs of both ztunnels, for a failing assertion. */
  const logs = () =>
    `sink connections: ${sinkBytes.map((b) => b()).join(', ')}\n` +
    [...(mesh?.nodes.values() ?? [])]
      .map((n) => `--- ${n.node.name}\n${n.lines.filter(Boolean).slice(-30).join('\n')}`)
      .join('\n');

  before(async () => {
    state = await labUp({ name: lab, nodes: 2, podsPerNode: 1, ...uniqueLabCidrs() });
    mesh = await LabMesh.start(state, { dir: join(dir, 'mesh'), protocol: 'HBONE', ztunnelArgs: KEEPALIVE });
    client = pod('n1-pod1');
    server = pod('n2-pod1');
    await mesh.enroll(client, 'sa-client');
    await mesh.enroll(server, 'sa-server');
    clientNetns = NetnsHandle.open(client.netnsPath);
    handles.push(clientNetns);
    const serverNetns = NetnsHandle.open(server.netnsPath);
    handles.push(serverNetns);
    const sink = await listenInNetns(serverNetns, { port: SINK_PORT, server: { allowHalfOpen: true } });
    sink.on('connection', (s: Socket) => {
      accepted.push(s);
      sinkEnds.push(observe(s));
      sinkBytes.push(() => s.bytesRead);
    });
    const echo = await listenInNetns(serverNetns, { port: ECHO_PORT, server: { allowHalfOpen: true } });
    echo.on('connection', (s: Socket) => {
      accepted.push(s);
      s.on('error', () => {});
      s.pipe(s);
    });
    apps.push(sink, echo);
  });

  after(async () => {
    try {
      await teardown();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  async function teardown(): Promise<void> {
    // A capture that cannot be stopped cleanly must not keep the lab from being removed.
    await Promise.allSettled(captures.map((c) => c.stop()));
    // Never leave a stopped process behind, whatever failed.
    for (const n of mesh?.nodes.values() ?? []) if (n.child.exitCode === null) n.child.kill('SIGCONT');
    await mesh?.stop();
    // A half-open app socket (EOF read, nothing to write) keeps no event-loop handle active, so close()
    // would wait for it with nothing left to run: the hook then ends as "still pending".
    for (const s of accepted) s.destroy();
    await Promise.all(apps.map((a) => new Promise((r) => a.close(r))));
    for (const h of handles) h.close();
    if (state) await labDown(lab);
  }

  /** waitFor that shows the ztunnels' last log lines when it times out. */
  const until = (pred: () => boolean, what: string) =>
    waitFor(pred, what, DEADLINE_MS).catch((err: Error) => {
      throw new Error(`${err.message}\n${logs()}`);
    });

  const captures: Capture[] = [];
  /** FIN and RST segments to or from the sink, on the server pod's loopback (where its upstream connection runs). */
  const capturing = async () => {
    const c = await startCapture(server.netns, 'lo', FIN_OR_RST);
    captures.push(c);
    return c;
  };

  const connectTo = (port: number) =>
    connected(connectInNetns(clientNetns, { host: server.ip, port, allowHalfOpen: true }));

  test('clean: 8 MiB each way ends with EOF and INFO access log lines without error', async () => {
    const body = randomBytes(8 * 1024 * 1024);
    const s = await connectTo(ECHO_PORT);
    const echoed = readAll(s);
    s.end(body);
    assert.equal(sha256(await within(echoed, 'the echo')), sha256(body), 'every byte back, then EOF');
    s.destroy();
    const size = body.length;
    const outbound = new RegExp(
      `\tinfo\taccess\tconnection complete\t.*dst\\.hbone_addr=${server.ip}:${ECHO_PORT} .*direction="outbound" bytes_sent=${size} bytes_recv=${size} `,
    );
    const inbound = new RegExp(
      `\tinfo\taccess\tconnection complete\t.*direction="inbound" bytes_sent=${size} bytes_recv=${size} `,
    );
    await until(() => node('n1').matching(outbound).length === 1, 'the outbound INFO line');
    await until(() => node('n2').matching(inbound).length === 1, 'the inbound INFO line');
    for (const line of [...node('n1').matching(outbound), ...node('n2').matching(inbound)]) {
      assert.doesNotMatch(line, / error=/, line);
    }
  });

  test('SIGSTOP of the peer ztunnel mid-transfer: the client sees ECONNRESET, not EOF; logged as ERROR', async (t) => {
    const peer = node('n2').child;
    const capture = await capturing();
    // The sink may accept before connectTo resolves: its index is taken first.
    const index = sinkEnds.length;
    const s = await connectTo(SINK_PORT);
    const ended = observe(s);
    const writer = pump(s);
    let stopped = false;
    try {
      await until(() => (sinkBytes[index]?.() ?? 0) >= 4 * 1024 * 1024, 'the transfer to be under way');
      assert.ok(peer.kill('SIGSTOP'), 'the peer ztunnel was stopped');
      stopped = true;
      const stoppedAt = Date.now();
      const end = await within(ended, "the client connection's end");
      t.diagnostic(
        `client: ${end.end} ${Date.now() - stoppedAt} ms after SIGSTOP, having written ${writer.written()} bytes (the app received ${sinkBytes[index]!()})`,
      );
      assert.equal(
        end.end,
        'ECONNRESET',
        `the client saw ${end.end} after writing ${writer.written()} bytes (the app received ${sinkBytes[index]!()})\n${logs()}`,
      );
      const line = new RegExp(
        `\terror\taccess\tconnection complete\t.*dst\\.hbone_addr=${server.ip}:${SINK_PORT} .*direction="outbound" .* error=`,
      );
      await until(() => node('n1').matching(line).length === 1, 'the outbound ERROR line');
      t.diagnostic(
        node('n1')
          .matching(line)[0]!
          .replace(/src\.workload.*dst\.hbone_addr/, '... dst.hbone_addr'),
      );
    } finally {
      if (stopped) peer.kill('SIGCONT');
      s.destroy();
    }
    // Once the peer runs again it finds the client's connection gone: its app is reset too.
    const sinkEnd = await within(sinkEnds[index]!, "the server app's end");
    const wire = await endOnTheWire(capture, SINK_PORT);
    t.diagnostic(`server app: ${sinkEnd.end} after ${sinkEnd.bytes} bytes; on the wire: ${wire}`);
    assert.equal(wire, 'RST', `the server app was sent ${wire} (it saw ${sinkEnd.end})\n${logs()}`);
    assert.ok(['ECONNRESET', 'EOF'].includes(sinkEnd.end), sinkEnd.end);
  });

  test("SIGKILL of the client's ztunnel mid-transfer: the server app is sent a reset, not a FIN; logged as ERROR", async (t) => {
    const capture = await capturing();
    const inboundError = new RegExp(
      `\terror\taccess\tconnection complete\t.*dst\\.addr=${server.ip}:15008 dst\\.hbone_addr=${server.ip}:${SINK_PORT} .*direction="inbound" .* error=`,
    );
    const errorsBefore = node('n2').matching(inboundError).length;
    const index = sinkEnds.length;
    const s = await connectTo(SINK_PORT);
    s.on('error', () => {});
    const writer = pump(s);
    try {
      await until(() => (sinkBytes[index]?.() ?? 0) >= 4 * 1024 * 1024, 'the transfer to be under way');
      assert.ok(node('n1').child.kill('SIGKILL'), "the client's ztunnel was killed");
      const end = await within(sinkEnds[index]!, "the server app's end");
      const wire = await endOnTheWire(capture, SINK_PORT);
      t.diagnostic(
        `server app: ${end.end} after ${end.bytes} bytes (the client wrote ${writer.written()}); on the wire: ${wire}`,
      );
      assert.equal(wire, 'RST', `the server app was sent ${wire} (it saw ${end.end})\n${logs()}`);
      assert.ok(['ECONNRESET', 'EOF'].includes(end.end), end.end);
      await until(() => node('n2').matching(inboundError).length > errorsBefore, 'the inbound ERROR line');
      t.diagnostic(
        node('n2')
          .matching(inboundError)
          .at(-1)!
          .replace(/src\.workload.*dst\.addr/, '... dst.addr'),
      );
    } finally {
      s.destroy();
    }
  });
});
