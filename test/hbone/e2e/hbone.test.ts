/**
 * HBONE on the real kernel: two pods on a veth with the seed's rules and a PodProxy each, both workloads
 * `protocol: HBONE`. Pod A's app traffic to pod B goes A:15001 -> HTTP/2 CONNECT over mTLS -> B:15008 -> app.
 */
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import http2 from 'node:http2';
import type { Server, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { parseLocalConfig } from '../../../src/discovery/local-config.js';
import { WorkloadStore } from '../../../src/discovery/store.js';
import { dialHbone } from '../../../src/hbone/client.js';
import { connectHbone, HboneTlsContexts } from '../../../src/hbone/tls.js';
import type { CertificateAuthority } from '../../../src/identity/ca.js';
import { LocalCa } from '../../../src/identity/local-ca.js';
import { CertificateManager } from '../../../src/identity/manager.js';
import { parseSpiffeId } from '../../../src/identity/spiffe.js';
import { startCapture } from '../../../src/lab/capture.js';
import { createRedirector } from '../../../src/redirect/index.js';
import { setLogSink } from '../../../src/runtime/log.js';
import { Registry } from '../../../src/runtime/metrics.js';
import { connected, connectInNetns, listenInNetns, NetnsHandle } from '../../../src/sys/index.js';
import type { WorkloadUid } from '../../../src/zds/messages.js';
import { TrafficMetrics } from '../../../src/ztunnel/proxy/metrics.js';
import { type Hbone, ProxyFactory } from '../../../src/ztunnel/proxy-factory.js';
import { parsePcap, reassemble, tlsRecordTypes } from '../../hbone/pcap.js';
import { readAll, sha256, waitFor } from '../../helpers/bytes.js';
import { VethPair } from '../../helpers/netns.js';
import { tempDir } from '../../identity/helpers.js';

const MARK = 0x539;
const ID_A = parseSpiffeId('spiffe://cluster.local/ns/default/sa/sa-a');
const ID_B = parseSpiffeId('spiffe://cluster.local/ns/default/sa/sa-b');
const RAW = parseSpiffeId('spiffe://cluster.local/ns/default/sa/raw');
const logLines: string[] = [];

/** Resolves with how a socket ended: 'data' if it received bytes, else its error code or 'closed'. */
function outcome(socket: Socket | tls.TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    socket.once('data', () => resolve('data'));
    socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    socket.once('close', () => resolve('closed'));
  });
}

describe('HBONE between two pods', () => {
  let pair: VethPair;
  let a: NetnsHandle;
  let b: NetnsHandle;
  let factory: ProxyFactory;
  let registry: Registry;
  let hbone: Hbone;
  let store: WorkloadStore;
  let ca: LocalCa;
  let caDir: Awaited<ReturnType<typeof tempDir>>;
  let app: Server;
  let appConnections = 0;
  let appMode: 'echo' | 'bulk' = 'echo';
  const bulkSeen: string[] = [];
  const BULK = 32 * 1024 * 1024;
  const bulkReply = randomBytes(BULK);
  let rawCerts: CertificateManager;
  let rawContexts: HboneTlsContexts;

  const yaml = (policies = '') => `
workloads:
  - name: a
    namespace: default
    serviceAccount: sa-a
    workloadIps: ["${pair.addrA}"]
    protocol: HBONE
  - name: b
    namespace: default
    serviceAccount: sa-b
    workloadIps: ["${pair.addrB}"]
    protocol: HBONE
${policies ? `policies:\n${policies}` : ''}`;
  const setPolicies = (policies = '') => store.replaceAll(parseLocalConfig(yaml(policies)));

  /** A connection from pod A's app to pod B's app, captured into the mesh. */
  const dialApp = (port = 8000) =>
    connected(connectInNetns(a, { host: pair.addrB, port, allowHalfOpen: true }));

  /** Raw HTTP/2 to B:15008 as `RAW`, from pod A's netns (marked, so not captured). */
  async function rawSession(): Promise<http2.ClientHttp2Session> {
    const tcp = connectInNetns(a, { host: pair.addrB, port: 15008, mark: MARK });
    const { socket } = await connectHbone(rawContexts, { source: RAW, expected: [ID_B], socket: tcp });
    const session = http2.connect(`https://${pair.addrB}:15008`, { createConnection: () => socket });
    session.on('error', () => {});
    return session;
  }

  function request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders) {
    return new Promise<{ status: number; stream: http2.ClientHttp2Stream }>((resolve, reject) => {
      const stream = session.request(headers, { endStream: false });
      stream.once('response', (h) => resolve({ status: Number(h[':status']), stream }));
      stream.once('error', reject);
    });
  }

  before(async () => {
    setLogSink({ write: (l: string) => void logLines.push(l) });
    pair = new VethPair();
    a = NetnsHandle.open(pair.a.path);
    b = NetnsHandle.open(pair.b.path);
    const redirector = createRedirector({ backend: 'iptables', inbound: 'tproxy' });
    await redirector.apply(a, [pair.addrA]);
    await redirector.apply(b, [pair.addrB]);
    caDir = await tempDir();
    ca = await LocalCa.open(caDir.path, { trustDomain: 'cluster.local' });
    store = new WorkloadStore();
    setPolicies();
    // Short TTL: certificates rotate every 3 s during the whole suite.
    registry = new Registry();
    factory = new ProxyFactory({
      store,
      metrics: new TrafficMetrics(registry),
      mark: MARK,
      portReuse: true,
      connectTimeoutMs: 5_000,
      drainDeadlineMs: 1000,
      socks5: false,
      ca,
      certTtlSeconds: 6,
    });
    hbone = factory.hbone!;
    await factory.start(
      'pod-a' as WorkloadUid,
      { name: 'a', namespace: 'default', serviceAccount: 'sa-a' },
      a,
    );
    await factory.start(
      'pod-b' as WorkloadUid,
      { name: 'b', namespace: 'default', serviceAccount: 'sa-b' },
      b,
    );
    app = await listenInNetns(b, { port: 8000, host: '::', backlog: 1024, server: { allowHalfOpen: true } });
    app.on('connection', (s: Socket) => {
      appConnections++;
      s.on('error', () => {});
      if (appMode === 'echo') {
        s.pipe(s);
        return;
      }
      void readAll(s).then((data) => bulkSeen.push(sha256(data)));
      s.end(bulkReply);
    });
    rawCerts = new CertificateManager({ ca });
    rawContexts = new HboneTlsContexts(rawCerts);
  });

  after(async () => {
    setLogSink(process.stdout);
    await Promise.all([...(factory?.proxies.values() ?? [])].map((p) => p.stop('immediate')));
    factory?.close();
    rawContexts?.close();
    rawCerts?.close();
    await new Promise((r) => (app ? app.close(r) : r(undefined)));
    a?.close();
    b?.close();
    pair?.remove();
    await caDir?.remove();
  });

  test('on the wire only TCP to/from 15008 carrying TLS records; the 1 MiB marker never appears', async () => {
    const ifA = pair.a.exec('ip', ['-o', 'link', 'show', 'type', 'veth']).split(': ')[1]!.split('@')[0]!;
    const capture = await startCapture(pair.a.name, ifA, 'tcp');
    let pcap: Buffer;
    try {
      const marker = Buffer.alloc(1024 * 1024, 'AMBIT-SECRET-MARKER-');
      const client = await dialApp();
      const echoed = readAll(client);
      client.end(marker);
      assert.equal(sha256(await echoed), sha256(marker));
    } finally {
      pcap = await capture.stop();
    }
    assert.equal(pcap.includes('AMBIT-SECRET-MARKER-'), false, 'the marker is not in the capture');
    const { segments } = parsePcap(pcap);
    assert.ok(segments.length > 0);
    for (const s of segments) {
      assert.ok(s.sport === 15008 || s.dport === 15008, `TCP ${s.src}:${s.sport} -> ${s.dst}:${s.dport}`);
    }
    const syn = segments.find((s) => s.syn && s.dport === 15008)!;
    const up = reassemble(segments, syn.sport, 15008);
    const down = reassemble(segments, 15008, syn.sport);
    assert.ok(up.length > 1024 * 1024, `client->server carried ${up.length} bytes`);
    const upTypes = tlsRecordTypes(up);
    const downTypes = tlsRecordTypes(down);
    assert.equal(upTypes[0], 22, 'starts with a handshake record');
    assert.ok(upTypes.filter((t) => t === 23).length > 10 && downTypes.includes(23));
  });

  test('bytes are intact both ways; access log and metrics carry identities and mutual_tls', async () => {
    const body = randomBytes(4 * 1024 * 1024);
    const client = await dialApp();
    const echoed = readAll(client);
    client.end(body);
    assert.equal(sha256(await echoed), sha256(body));
    await waitFor(
      () =>
        logLines.some(
          (l) =>
            l.includes('connection complete') &&
            l.includes('bytes_sent=4194304') &&
            l.includes('direction="outbound"'),
        ),
      'the outbound access log',
    );
    const out = logLines.find(
      (l) =>
        l.includes('connection complete') &&
        l.includes('bytes_sent=4194304') &&
        l.includes('direction="outbound"'),
    )!;
    assert.match(
      out,
      new RegExp(
        `src\\.identity="${ID_A}"(?: src\\.cluster="[^"]+")? dst\\.addr=${pair.addrB}:15008 dst\\.hbone_addr=${pair.addrB}:8000`,
      ),
    );
    assert.match(out, new RegExp(`dst\\.identity="${ID_B}"`));
    await waitFor(
      () =>
        logLines.some(
          (l) =>
            l.includes('connection complete') &&
            l.includes('direction="inbound"') &&
            l.includes('bytes_recv=4194304'),
        ),
      'the inbound access log',
    );
    const metrics = await registry.metrics();
    assert.match(
      metrics,
      new RegExp(
        `istio_tcp_received_bytes_total\\{reporter="source"[^}]*source_principal="${ID_A}"[^}]*destination_principal="${ID_B}"[^}]*response_flags="-",connection_security_policy="mutual_tls"\\}`,
      ),
    );
    assert.match(
      metrics,
      /istio_tcp_connections_opened_total\{reporter="destination"[^}]*connection_security_policy="mutual_tls"\}/,
    );
  });

  test("the app's first bytes go with the CONNECT (early data): in order, then both ways, FIN after them", async () => {
    // Written at connect time, while the tunnel is still opening.
    const client = await dialApp();
    client.write('GET /early HTTP/1.1\r\n');
    client.write('\r\n');
    const first = await new Promise<string>((resolve) =>
      client.once('data', (d: Buffer) => resolve(String(d))),
    );
    assert.equal(first, 'GET /early HTTP/1.1\r\n\r\n'.slice(0, first.length));
    const rest = readAll(client);
    client.end('bye');
    assert.equal(first + String(await rest), 'GET /early HTTP/1.1\r\n\r\nbye');

    // The whole request and its FIN before the answer: END_STREAM follows the early data.
    const size = 100_000; // above the early-data bound: the socket pauses, then the pipe takes it
    const body = randomBytes(size);
    const oneShot = await dialApp();
    const echoed = readAll(oneShot);
    oneShot.end(body);
    assert.equal(sha256(await echoed), sha256(body));
    const fields = [
      'connection complete',
      'direction="outbound"',
      `bytes_sent=${size} `,
      `bytes_recv=${size} `,
    ];
    await waitFor(
      () => logLines.some((l) => fields.every((f) => l.includes(f))),
      'the outbound access log counts each byte once',
    );
  });

  test('100 concurrent connections from pod A to pod B share one TLS connection', async () => {
    const sockets = await Promise.all(Array.from({ length: 100 }, () => dialApp()));
    for (const s of sockets) s.on('error', () => {});
    const results = await Promise.all(
      sockets.map((s, i) => {
        const got = new Promise<Buffer>((resolve) => s.once('data', resolve));
        s.write(`hello ${i}`);
        return got.then((d) => d.toString() === `hello ${i}`);
      }),
    );
    assert.equal(results.filter(Boolean).length, 100);
    const established = pair.a
      .exec('ss', ['-Htn', 'state', 'established', '( dport = :15008 )'])
      .trim()
      .split('\n')
      .filter(Boolean);
    assert.equal(established.length, 1, established.join('\n'));
    assert.equal(hbone.pool.stats().connections, 1);
    for (const s of sockets) s.destroy();
  });

  test('32 MiB each way at once through one tunnel completes (no HTTP/2 flow-control deadlock)', async () => {
    appMode = 'bulk';
    try {
      const upload = randomBytes(BULK);
      const client = await dialApp();
      const got = readAll(client);
      client.end(upload);
      assert.equal(sha256(await got), sha256(bulkReply));
      await waitFor(() => bulkSeen.length === 1, 'the app to read everything');
      assert.equal(bulkSeen[0], sha256(upload));
    } finally {
      appMode = 'echo';
    }
  });

  test('raw HTTP/2 to 15008: GET 400, CONNECT to another IP 400, stopped app 503, illegal port 503', async () => {
    const session = await rawSession();
    try {
      assert.equal((await request(session, { ':method': 'GET', ':path': '/' })).status, 400);
      assert.equal(
        (await request(session, { ':method': 'CONNECT', ':authority': `${pair.addrA}:8000` })).status,
        400,
      );
      assert.equal(
        (await request(session, { ':method': 'CONNECT', ':authority': `${pair.addrB}:8001` })).status,
        503,
      );
      assert.equal(
        (await request(session, { ':method': 'CONNECT', ':authority': `${pair.addrB}:15006` })).status,
        503,
      );
      const ok = await request(session, { ':method': 'CONNECT', ':authority': `${pair.addrB}:8000` });
      assert.equal(ok.status, 200);
      ok.stream.end('ping');
      const echoed = await new Promise<string>((resolve) =>
        ok.stream.once('data', (d: Buffer) => resolve(d.toString())),
      );
      assert.equal(echoed, 'ping');
    } finally {
      session.destroy();
    }
  });

  test('DENY policy -> 401 and the app sees no connection; ALLOW-only admits only the named principal', async () => {
    const session = await rawSession();
    try {
      setPolicies(`  - name: deny-raw
    namespace: default
    scope: Namespace
    action: Deny
    rules: [[[{principals: [{Exact: "cluster.local/ns/default/sa/raw"}]}]]]`);
      const before = appConnections;
      assert.equal(
        (await request(session, { ':method': 'CONNECT', ':authority': `${pair.addrB}:8000` })).status,
        401,
      );
      assert.equal(appConnections, before, 'the app saw no connection');
      assert.ok(
        logLines.some((l) =>
          l.includes('connection closed due to policy rejection: explicitly denied by: default/deny-raw'),
        ),
      );

      setPolicies(`  - name: only-raw
    namespace: default
    scope: Namespace
    action: Allow
    rules: [[[{principals: [{Exact: "cluster.local/ns/default/sa/raw"}]}]]]`);
      assert.equal(
        (await request(session, { ':method': 'CONNECT', ':authority': `${pair.addrB}:8000` })).status,
        200,
      );
      const meshClient = await dialApp();
      const seen = outcome(meshClient);
      meshClient.write('not allowed');
      assert.notEqual(await seen, 'data', 'pod A (sa-a) is not the named principal');
    } finally {
      setPolicies();
      session.destroy();
    }
  });

  test('a policy change that denies a running connection closes it', async () => {
    const client = await dialApp();
    client.on('error', () => {});
    const first = new Promise<Buffer>((resolve) => client.once('data', resolve));
    client.write('before');
    assert.equal((await first).toString(), 'before');
    let closed = false;
    client.once('close', () => {
      closed = true;
    });
    setPolicies(`  - name: deny-a
    namespace: default
    scope: Namespace
    action: Deny
    rules: [[[{principals: [{Exact: "cluster.local/ns/default/sa/sa-a"}]}]]]`);
    try {
      await waitFor(() => closed, 'the denied connection to close');
      await waitFor(
        () =>
          logLines.some((l) =>
            l.includes('connection closed due to policy change: explicitly denied by: default/deny-a'),
          ),
        'the policy-change log',
      );
    } finally {
      setPolicies();
    }
  });

  test('a peer with another identity than expected, a foreign CA, or no client certificate is rejected', async () => {
    await assert.rejects(
      dialHbone(rawContexts, {
        connect: () => connectInNetns(a, { host: pair.addrB, port: 15008, mark: MARK }),
        host: pair.addrB,
        port: 15008,
        source: RAW,
        expected: [parseSpiffeId('spiffe://cluster.local/ns/default/sa/not-b')],
        connectTimeoutMs: 5000,
      }),
      (e: { code?: string }) => e.code === 'ERR_IDENTITY_MISMATCH',
    );
    // A client of trust domain other.td whose bundle trusts our root, so only the server's check can refuse it.
    const foreignDir = await tempDir();
    const foreign = await LocalCa.open(foreignDir.path, { trustDomain: 'other.td' });
    const federated: CertificateAuthority = {
      sign: async (csr, o) => {
        const s = await foreign.sign(csr, o);
        return { ...s, rootPem: s.rootPem + ca.rootPem };
      },
    };
    const foreignCerts = new CertificateManager({ ca: federated });
    const foreignContexts = new HboneTlsContexts(foreignCerts);
    try {
      const rejectedBefore = logLines.filter(
        (l) => l.includes('connection failed') && l.includes('direction="inbound"'),
      ).length;
      const tcp = connectInNetns(a, { host: pair.addrB, port: 15008, mark: MARK });
      const { socket } = await connectHbone(foreignContexts, {
        source: parseSpiffeId('spiffe://other.td/ns/default/sa/x'),
        expected: [ID_B],
        socket: tcp,
      });
      socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      assert.notEqual(await outcome(socket), 'data');
      // Without a client certificate.
      const bare = tls.connect({
        socket: connectInNetns(a, { host: pair.addrB, port: 15008, mark: MARK }),
        ALPNProtocols: ['h2'],
        rejectUnauthorized: false,
        minVersion: 'TLSv1.3',
      });
      bare.once('secureConnect', () => bare.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'));
      assert.notEqual(await outcome(bare), 'data');
      await waitFor(
        () =>
          logLines.filter((l) => l.includes('connection failed') && l.includes('direction="inbound"'))
            .length >=
          rejectedBefore + 2,
        'both rejections logged',
      );
    } finally {
      foreignContexts.close();
      foreignCerts.close();
      await foreignDir.remove();
    }
  });

  test('certificates rotate before expiry without dropping an established tunnel', async () => {
    const client = await dialApp();
    client.on('error', () => {});
    const echo = async (text: string) => {
      const got = new Promise<Buffer>((resolve) => client.once('data', resolve));
      client.write(text);
      return (await got).toString();
    };
    assert.equal(await echo('one'), 'one');
    const serialA = hbone.certificates.current(ID_A)!.serialNumber;
    const serialB = hbone.certificates.current(ID_B)!.serialNumber;
    await waitFor(
      () =>
        hbone.certificates.current(ID_A)?.serialNumber !== serialA &&
        hbone.certificates.current(ID_B)?.serialNumber !== serialB,
      'both pods to rotate',
    );
    assert.equal(await echo('two'), 'two', 'the tunnel survived the rotation');
    // New handshakes present the new certificate.
    const { socket } = await connectHbone(rawContexts, {
      source: RAW,
      expected: [ID_B],
      socket: connectInNetns(a, { host: pair.addrB, port: 15008, mark: MARK }),
    });
    const presented = new X509Certificate(socket.getPeerCertificate().raw);
    assert.notEqual(
      presented.serialNumber.toLowerCase().replace(/^0+/, ''),
      serialB.toLowerCase().replace(/^0+/, ''),
    );
    socket.destroy();
    client.destroy();
  });
});
