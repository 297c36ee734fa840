/**
 * HBONE between `ambit ztunnel` processes in a two-node lab: the client pod's traffic to mesh pods on
 * the same node and on the other node travels as mTLS HTTP/2 CONNECT to the peer's :15008, with
 * certificates from the lab's CA; on the client pod's wire there is only TLS to 15008.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startCapture } from '../../../src/lab/capture.js';
import { type LabPod, type LabState, labDown, labUp } from '../../../src/lab/index.js';
import { connected, connectInNetns, listenInNetns, NetnsHandle } from '../../../src/sys/index.js';
import { parsePcap, reassemble, tlsRecordTypes } from '../../hbone/pcap.js';
import { readAll, sha256, waitFor } from '../../helpers/bytes.js';
import { LabMesh } from '../../helpers/lab-mesh.js';
import { uniqueLabCidrs } from '../../helpers/netns.js';

const SIZE = 10 * 1024 * 1024;
describe('HBONE between ztunnel processes across lab nodes', () => {
  const lab = `th${randomBytes(4).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'ambit-zth-'));
  const handles: NetnsHandle[] = [];
  const apps: Server[] = [];
  const seenBy = new Map<string, string[]>();
  let state: LabState;
  let mesh: LabMesh | undefined;
  let client: LabPod;
  let clientNetns: NetnsHandle;
  const pod = (name: string) => state.pods.find((p) => p.name === name)!;

  before(async () => {
    state = await labUp({
      name: lab,
      nodes: 2,
      podsPerNode: 2,
      ...uniqueLabCidrs(),
    });
    mesh = await LabMesh.start(state, { dir: join(dir, 'mesh'), protocol: 'HBONE' });
    client = pod('n1-pod1');
    for (const name of ['n1-pod1', 'n1-pod2', 'n2-pod1', 'n2-pod2']) {
      // Each pod its own service account, so identities differ per pod.
      await mesh.enroll(pod(name), `sa-${name}`);
    }
    clientNetns = NetnsHandle.open(client.netnsPath);
    handles.push(clientNetns);
    // Echo apps that record the source address they see.
    for (const name of ['n1-pod2', 'n2-pod1', 'n2-pod2']) {
      const h = NetnsHandle.open(pod(name).netnsPath);
      handles.push(h);
      const app = await listenInNetns(h, { port: 8000, server: { allowHalfOpen: true } });
      apps.push(app);
      seenBy.set(name, []);
      app.on('connection', (s: Socket) => {
        s.on('error', () => {});
        seenBy.get(name)!.push((s.remoteAddress ?? '').replace('::ffff:', ''));
        s.pipe(s);
      });
    }
  });

  after(async () => {
    await mesh?.stop();
    await Promise.all(apps.map((a) => new Promise((r) => a.close(r))));
    for (const h of handles) h.close();
    if (state) await labDown(lab);
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [target, label] of [
    ['n1-pod2', 'same node'],
    ['n2-pod1', 'cross node'],
  ] as const) {
    test(`${label}: 10 MiB each way intact over HBONE; identities in the access log`, async () => {
      const server = pod(target);
      const body = randomBytes(SIZE);
      const s = await connected(
        connectInNetns(clientNetns, { host: server.ip, port: 8000, allowHalfOpen: true }),
      );
      const echoed = readAll(s);
      s.end(body);
      assert.equal(sha256(await echoed), sha256(body));
      s.destroy();
      assert.deepEqual(seenBy.get(target), [client.ip], 'the app sees the client pod as source');

      const n1 = mesh!.nodes.get('n1')!;
      const re = new RegExp(
        `connection complete\t.*dst\\.addr=${server.ip}:15008 dst\\.hbone_addr=${server.ip}:8000`,
      );
      await waitFor(() => n1.matching(re).length > 0, 'the outbound access log', 15_000);
      const line = n1.matching(re)[0]!;
      assert.match(line, /src\.identity="spiffe:\/\/cluster\.local\/ns\/default\/sa\/sa-n1-pod1" /);
      assert.match(line, new RegExp(`dst\\.identity="spiffe://cluster\\.local/ns/default/sa/sa-${target}" `));
      assert.match(line, new RegExp(`bytes_sent=${SIZE} bytes_recv=${SIZE} `));
      const inbound = mesh!.nodes.get(server.node)!;
      await waitFor(
        () =>
          inbound.matching(new RegExp(`direction="inbound" bytes_sent=${SIZE} bytes_recv=${SIZE}`)).length >
            0 &&
          inbound.matching(
            /src\.identity="spiffe:\/\/cluster\.local\/ns\/default\/sa\/sa-n1-pod1" .*direction="inbound"/,
          ).length > 0,
        'the inbound access log',
        15_000,
      );
    });
  }

  test("on the client pod's wire: only TCP to/from 15008 carrying TLS, never the app's bytes", async () => {
    const capture = await startCapture(client.netns, 'eth0', 'tcp');
    let pcap: Buffer;
    try {
      const marker = Buffer.alloc(1024 * 1024, 'AMBIT-LAB-MARKER-');
      const s = await connected(
        connectInNetns(clientNetns, { host: pod('n2-pod2').ip, port: 8000, allowHalfOpen: true }),
      );
      const echoed = readAll(s);
      s.end(marker);
      assert.equal(sha256(await echoed), sha256(marker));
      s.destroy();
    } finally {
      pcap = await capture.stop();
    }
    assert.equal(pcap.includes('AMBIT-LAB-MARKER-'), false, 'the app payload never appears on the wire');
    const { segments } = parsePcap(pcap);
    assert.ok(
      segments.some((s) => s.payload.length > 0),
      'the capture saw the transfer',
    );
    for (const s of segments) {
      assert.ok(
        s.sport === 15008 || s.dport === 15008,
        `unexpected TCP ${s.src}:${s.sport} -> ${s.dst}:${s.dport}`,
      );
    }
    // n2-pod2 is dialled for the first time here, so its tunnel starts inside the capture: both
    // directions of it parse as TLS records from the first byte, and the marker went as app data.
    const syn = segments.find((s) => s.syn && s.dport === 15008);
    assert.ok(syn, 'the capture holds the tunnel from its SYN');
    const up = tlsRecordTypes(reassemble(segments, syn.sport, 15008));
    const down = tlsRecordTypes(reassemble(segments, 15008, syn.sport));
    assert.equal(up[0], 22, 'the client starts with a TLS handshake record');
    assert.ok(
      up.filter((t) => t === 23).length > 10 && down.includes(23),
      'application data records both ways',
    );
  });
});
