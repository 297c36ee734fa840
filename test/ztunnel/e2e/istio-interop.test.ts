/**
 * ambit's HBONE against Istio's own ztunnel, both ways, on a lab cluster fed by ambit's agent and
 * control plane: node n1 runs ambit's ztunnel, node n2 Istio's binary in its place, one meshed pod
 * on each. From each pod to the other: request/response and 8 MiB each way at once, intact (sha256),
 * each app seeing the other's FIN; both ztunnels count the connections as mutual TLS (the one whose
 * pod dialled as `source`, the other as `destination`), so the bytes crossed as HBONE between the two
 * stacks. Resets: Istio's ztunnel turns every reset into a clean close (its copy loop; two Istio
 * ztunnels do the same), so an app's reset reaches the far app as a FIN either way; a reset on ambit's
 * side must still cross as an RST_STREAM that Istio records as the connection's error. Istio's binary
 * comes from $ISTIO_ZTUNNEL or `istio-ztunnel` on PATH; without it the tests are skipped, saying why.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import {
  adminClient,
  ClusterLayout,
  clusterDown,
  clusterPod,
  clusterUp,
  connectionsOpenedSeries,
  findIstioZtunnel,
  logTail,
  type OpenedSeries,
  podAdd,
  type ServedPod,
  startComponent,
  stopComponent,
  waitServing,
} from '../../../src/lab/cluster/index.js';
import type { LabNode, LabState } from '../../../src/lab/index.js';
import { connected, connectInNetns, listenInNetns, NetnsHandle } from '../../../src/sys/index.js';
import { sha256 } from '../../helpers/bytes.js';
import { uniqueLabCidrs } from '../../helpers/netns.js';
import { eventually, within } from '../../helpers/wait.js';

const NAMESPACE = 'interop';
const BULK = 8 * 1024 * 1024;
const ROUND_TRIPS = 20;
const RR_SIZE = 1024;
/** Echoes every byte back and ends when the client ends. */
const ECHO_PORT = 8000;
/** Sends its payload and ends at once, while reading the client's to its end (both ways at once). */
const BULK_PORT = 8001;
/** Answers the client's first bytes, then waits for the client's end (and ends too) or reset. */
const HOLD_PORT = 8002;
/** Answers the client's first bytes, then resets when the client sends more. */
const RESETTING_PORT = 8003;
/**
 * How Istio's ztunnel names, in its access log, the RST_STREAM code ambit sends when its app resets:
 * CONNECT_ERROR (RFC 9113 §8.5).
 */
const ISTIO_READS_RESET =
  /error=".*connection established in response to a CONNECT request was reset or abnormally closed"/;

/** How a socket's reading side ended: `EOF` (a FIN), an error code (ECONNRESET), or `close` without either. */
type End = 'EOF' | string;

function ended(s: Socket): Promise<End> {
  return new Promise((resolve) => {
    s.once('end', () => resolve('EOF'));
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    s.once('close', () => resolve('close'));
  });
}

/** Everything the socket delivers until its end, and how it ended. */
function drain(s: Socket): Promise<{ data: Buffer; end: End }> {
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  return ended(s).then((end) => ({ data: Buffer.concat(chunks), end }));
}

/** Reads exactly `n` bytes from a socket in paused mode. */
function readExactly(s: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got >= n) {
        s.off('data', onData);
        s.off('error', reject);
        s.off('end', onEnd);
        s.pause();
        const all = Buffer.concat(chunks);
        if (all.length > n) s.unshift(all.subarray(n));
        resolve(all.subarray(0, n));
      }
    };
    const onEnd = () => reject(new Error(`the peer ended after ${got} of ${n} bytes`));
    s.on('data', onData);
    s.once('error', reject);
    s.once('end', onEnd);
    s.resume();
  });
}

/** The series of `istio_tcp_connections_opened_total` for mutual TLS from `from` to `to`, by `reporter`. */
function mtlsOpened(series: OpenedSeries[], reporter: string, from: ServedPod, to: ServedPod): number {
  return series
    .filter(
      (s) =>
        s.labels['reporter'] === reporter &&
        s.labels['connection_security_policy'] === 'mutual_tls' &&
        s.labels['source_workload'] === from.name &&
        s.labels['destination_workload'] === to.name,
    )
    .reduce((sum, s) => sum + s.value, 0);
}

describe("ambit's ztunnel and Istio's ztunnel carry each other's HBONE", () => {
  const istio = findIstioZtunnel(undefined);
  const skip = 'missing' in istio ? `Istio's ztunnel: ${istio.missing}` : false;
  const lab = `ti${randomBytes(3).toString('hex')}`;
  const layout = new ClusterLayout(lab);
  const handles: NetnsHandle[] = [];
  const apps: Server[] = [];
  const accepted = new Set<Socket>();
  /** How the hold app's connections ended, by pod, in accept order. */
  const resetEnds = new Map<string, Promise<End>[]>();
  /** What the bulk app received on each connection and how it ended, by pod. */
  const bulkSeen = new Map<string, Promise<{ digest: string; end: End }>[]>();
  const bulkReply = randomBytes(BULK);
  /** ztunnel pid by node. */
  const pids = new Map<string, number>();
  let nodes: LabNode[] = [];
  let ambitPod: ServedPod;
  let istioPod: ServedPod;
  let up = false;

  /** The complete lines Istio's ztunnel (n2) logged so far. */
  const istioLog = () => {
    try {
      return readFileSync(layout.logFile({ component: 'ztunnel', node: 'n2' }), 'utf8')
        .split('\n')
        .slice(0, -1);
    } catch {
      return [];
    }
  };

  /** Both ztunnels' log tails, for failure messages. */
  const logs = () =>
    ['n1', 'n2']
      .map((node) => {
        const file = layout.logFile({ component: 'ztunnel', node });
        return `\n--- ${node === 'n1' ? "ambit's" : "Istio's"} ztunnel (${file}):\n${logTail(file, 40)}`;
      })
      .join('');

  async function servePod(pod: ServedPod): Promise<void> {
    const netns = NetnsHandle.open(pod.netnsPath);
    handles.push(netns);
    const listen = async (port: number, onConnection: (s: Socket) => void) => {
      const app = await listenInNetns(netns, { port, server: { allowHalfOpen: true } });
      apps.push(app);
      app.on('connection', (s: Socket) => {
        accepted.add(s);
        s.once('close', () => accepted.delete(s));
        onConnection(s);
      });
    };
    await listen(ECHO_PORT, (s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    bulkSeen.set(pod.name, []);
    await listen(BULK_PORT, (s) => {
      bulkSeen.get(pod.name)!.push(drain(s).then(({ data, end }) => ({ digest: sha256(data), end })));
      s.end(bulkReply);
    });
    resetEnds.set(pod.name, []);
    await listen(HOLD_PORT, (s) => {
      const end = ended(s);
      resetEnds.get(pod.name)!.push(end);
      s.once('data', () => s.write('ok\n'));
      // As most apps do: the peer's end ends this side too (so the proxies finish the connection).
      void end.then((how) => {
        if (how === 'EOF') s.end();
      });
    });
    await listen(RESETTING_PORT, (s) => {
      s.on('error', () => {});
      // The reset waits for the client's next bytes, so it never arrives at the proxy together with
      // the answer: a reset right behind unread data can read as an EOF there (libuv: POLLHUP after a
      // short read), and the proxy would rightly pass on a clean end.
      s.once('data', () => {
        s.write('ok\n');
        s.once('data', () => s.resetAndDestroy());
      });
    });
  }

  async function connect(from: ServedPod, to: ServedPod, port: number): Promise<Socket> {
    const netns = NetnsHandle.open(from.netnsPath);
    try {
      return await connected(connectInNetns(netns, { host: to.ip, port, allowHalfOpen: true }));
    } finally {
      netns.close();
    }
  }

  /**
   * A connection from `client` to `server` whose `resetter` app resets once both apps exchanged a
   * line; resolves to how the other app's connection ended (which then ends its side too, as an app
   * would). `close` drops the client's socket.
   */
  async function resetAcross(
    client: ServedPod,
    server: ServedPod,
    resetter: 'client' | 'server',
  ): Promise<{ end: End; port: number; close: () => void }> {
    const port = resetter === 'client' ? HOLD_PORT : RESETTING_PORT;
    const ends = resetEnds.get(server.name)!;
    const index = ends.length;
    const s = await connect(client, server, port);
    s.on('error', () => {});
    try {
      s.write('hello\n');
      await within(readExactly(s, 3), 'the app to answer', logs);
      if (resetter === 'client') {
        s.resetAndDestroy();
        await eventually('the server app to accept', () => ends.length > index);
        return { end: await within(ends[index]!, "the server app's end", logs), port, close: () => {} };
      }
      const clientEnd = ended(s);
      s.resume();
      s.write('reset\n');
      const end = await within(clientEnd, "the client app's end", logs);
      if (end === 'EOF') s.end();
      return { end, port, close: () => s.destroy() };
    } catch (err) {
      s.destroy();
      throw err;
    }
  }

  async function restartZtunnel(node: string, options: Parameters<typeof startComponent>[2]) {
    const id = { component: 'ztunnel', node } as const;
    await stopComponent(lab, id);
    pids.set(node, await startComponent(lab, id, options));
  }

  before(async () => {
    if (skip) return;
    const state: LabState = await clusterUp({ name: lab, nodes: 2, ...uniqueLabCidrs() });
    up = true;
    nodes = state.nodes;
    // Istio's binary in place of n2's ztunnel, on the same ZDS socket, CA, xDS and token.
    await restartZtunnel('n2', { proxy: { kind: 'istio', binary: (istio as { binary: string }).binary } });
    await adminClient(lab).createNamespace({ body: { metadata: { name: NAMESPACE } } });
    await adminClient(lab).patchNamespace(
      { name: NAMESPACE, body: { metadata: { labels: { 'istio.io/dataplane-mode': 'ambient' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const pods: ServedPod[] = [];
    for (const [name, node] of [
      ['ambit-side', 'n1'],
      ['istio-side', 'n2'],
    ] as const) {
      await podAdd(lab, { namespace: NAMESPACE, name }, { node });
      const sandbox = clusterPod(lab, { namespace: NAMESPACE, name });
      assert.ok(sandbox, `pod ${NAMESPACE}/${name} has a sandbox`);
      pods.push({ name, node, ip: sandbox.ip, netns: sandbox.netns, netnsPath: sandbox.netnsPath });
    }
    [ambitPod, istioPod] = pods as [ServedPod, ServedPod];
    for (const pod of pods) await servePod(pod);
  });

  after(async () => {
    for (const s of accepted) s.destroy();
    await Promise.all(apps.map((a) => new Promise((r) => a.close(r))));
    for (const h of handles) h.close();
    if (up) await clusterDown(lab);
  });

  describe("ambit's ztunnel", { skip }, () => {
    before(async () => {
      // A fresh ambit ztunnel on n1, so its pid is known: the pods are served once their listeners are its.
      await restartZtunnel('n1', {});
      await waitServing(lab, nodes, pids, [ambitPod, istioPod]);
    });

    for (const [label, from, to, ambitAppResets] of [
      ["ambit's client -> Istio's server", () => ambitPod, () => istioPod, 'client'],
      ["Istio's client -> ambit's server", () => istioPod, () => ambitPod, 'server'],
    ] as const) {
      test(`${label}: request/response and 8 MiB each way at once, intact; both ztunnels count mutual TLS`, async (t) => {
        const [client, server] = [from(), to()];
        const count = async () => {
          const [n1, n2] = await Promise.all(nodes.map((n) => connectionsOpenedSeries(n)));
          const byNode = new Map([
            ['n1', n1!],
            ['n2', n2!],
          ]);
          return {
            source: mtlsOpened(byNode.get(client.node)!, 'source', client, server),
            destination: mtlsOpened(byNode.get(server.node)!, 'destination', client, server),
          };
        };
        const before = await count();

        // Request/response: each 1 KiB comes back as sent; the client's FIN reaches the app, the app's comes back.
        const rr = await connect(client, server, ECHO_PORT);
        try {
          for (let i = 0; i < ROUND_TRIPS; i++) {
            const request = randomBytes(RR_SIZE);
            rr.write(request);
            const answer = await within(readExactly(rr, RR_SIZE), `echo ${i}`, logs);
            assert.ok(answer.equals(request), `round trip ${i} came back intact${logs()}`);
          }
          const end = ended(rr);
          rr.resume();
          rr.end();
          assert.equal(await within(end, 'the echo end', logs), 'EOF', `the echo app's FIN${logs()}`);
        } finally {
          rr.destroy();
        }

        // The whole request and its FIN at connect time: they go with the CONNECT (early data, END_STREAM
        // before the answer) where the client is ambit's; the echo comes back whole either way.
        const oneShot = await connect(client, server, ECHO_PORT);
        try {
          const request = randomBytes(RR_SIZE);
          const received = drain(oneShot);
          oneShot.end(request);
          const got = await within(received, 'the one-shot echo', logs);
          assert.equal(got.end, 'EOF', `the one-shot echo ended with a FIN${logs()}`);
          assert.ok(got.data.equals(request), `the one-shot echo came back intact${logs()}`);
        } finally {
          oneShot.destroy();
        }

        // Bulk both ways at once: the app sends its 8 MiB and ends while the client sends its 8 MiB and ends.
        const request = randomBytes(BULK);
        const seen = bulkSeen.get(server.name)!;
        const index = seen.length;
        const bulk = await connect(client, server, BULK_PORT);
        try {
          const received = drain(bulk);
          bulk.end(request);
          const got = await within(received, 'the bulk reply', logs);
          assert.equal(got.end, 'EOF', `the bulk reply ended with a FIN${logs()}`);
          assert.equal(got.data.length, BULK, `reply length${logs()}`);
          assert.equal(sha256(got.data), sha256(bulkReply), `reply intact${logs()}`);
          await eventually('the bulk app to accept', () => seen.length > index);
          const app = await within(seen[index]!, "the bulk app's end", logs);
          assert.equal(app.end, 'EOF', `the bulk app saw the client's FIN${logs()}`);
          assert.equal(app.digest, sha256(request), `request intact${logs()}`);
        } finally {
          bulk.destroy();
        }

        // Two connections, each opened through both ztunnels as HBONE.
        let after = before;
        await eventually('both ztunnels to count the two connections as mutual TLS', async () => {
          after = await count();
          return after.source >= before.source + 2 && after.destination >= before.destination + 2;
        }).catch((err: Error) => {
          throw new Error(
            `${err.message}: before ${JSON.stringify(before)}, after ${JSON.stringify(after)}${logs()}`,
          );
        });
        t.diagnostic(
          `mutual TLS connections opened: before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`,
        );
      });

      // Istio's ztunnel never hands its app a TCP reset, nor sends RST_STREAM for its app's reset: its
      // copy loop treats a reset as a normal close (between two Istio ztunnels too, every case here
      // ends in a FIN). So an app reset crosses to the far app as a FIN; what proves the reset
      // travelled as one is Istio's access log, which records the RST_STREAM it got from ambit as
      // the connection's error (a CANCEL or NO_ERROR it would have read as a clean end).
      const istioApp = ambitAppResets === 'client' ? 'server' : 'client';
      const istioLine = (client: ServedPod, server: ServedPod, port: number) =>
        new RegExp(
          `access\tconnection complete\t.*dst\\.hbone_addr=${server.ip}:${port} .*direction="${
            client.node === 'n2' ? 'outbound' : 'inbound'
          }".*`,
        );

      test(`${label}: the ${ambitAppResets} app's reset (ambit's side) ends the ${istioApp} app's connection and Istio logs the RST_STREAM as an error`, async (t) => {
        const [client, server] = [from(), to()];
        const mark = istioLog().length;
        const { end, port, close } = await resetAcross(client, server, ambitAppResets);
        try {
          t.diagnostic(`the ${istioApp} app (Istio's side) saw: ${end}`);
          assert.equal(end, 'EOF', `the ${istioApp} app saw ${end}${logs()}`);
          const line = istioLine(client, server, port);
          let seen: string | undefined;
          await eventually("Istio's access log line of the connection", () => {
            seen = istioLog()
              .slice(mark)
              .find((l) => line.test(l));
            return seen !== undefined;
          }).catch((err: Error) => {
            throw new Error(`${err.message}${logs()}`);
          });
          t.diagnostic(
            `Istio: ${seen!.replace(/\tsrc\.addr.*direction/, ' ... direction').replace(/\t/g, ' ')}`,
          );
          assert.match(seen!, ISTIO_READS_RESET, `Istio read the reset as${logs()}`);
        } finally {
          close();
        }
      });

      test(`${label}: the ${istioApp} app's reset (Istio's side) reaches the ${ambitAppResets} app as Istio sends it: a clean end`, async (t) => {
        const { end, close } = await resetAcross(from(), to(), istioApp);
        close();
        t.diagnostic(`the ${ambitAppResets} app (ambit's side) saw: ${end}`);
        assert.equal(end, 'EOF', `the ${ambitAppResets} app saw ${end}${logs()}`);
      });
    }
  });
});
