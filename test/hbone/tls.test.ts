import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import tls from 'node:tls';
import { AmbitError } from '../../src/errors.js';
import {
  connectHbone,
  HBONE_CIPHERS,
  HboneServerTls,
  HboneTlsContexts,
  peerIdentity,
} from '../../src/hbone/tls.js';
import type { CertificateAuthority } from '../../src/identity/ca.js';
import { LocalCa } from '../../src/identity/local-ca.js';
import { CertificateManager } from '../../src/identity/manager.js';
import { parseSpiffeId, type SpiffeId } from '../../src/identity/spiffe.js';
import { setLogSink } from '../../src/runtime/log.js';
import { tempDir } from '../identity/helpers.js';

const SERVER = parseSpiffeId('spiffe://cluster.local/ns/srv/sa/server');
const CLIENT = parseSpiffeId('spiffe://cluster.local/ns/cli/sa/client');
const FOREIGN_CLIENT = parseSpiffeId('spiffe://other.td/ns/cli/sa/client');

/** A CA whose answers carry extra trusted roots (a federated trust bundle). */
function withExtraRoots(ca: LocalCa, ...extra: LocalCa[]): CertificateAuthority {
  return {
    sign: async (csr, options) => {
      const signed = await ca.sign(csr, options);
      return { ...signed, rootPem: [signed.rootPem, ...extra.map((x) => x.rootPem)].join('') };
    },
  };
}

/** A TCP listener on 127.0.0.1 feeding an HBONE server-side TLS acceptor, recording its verdicts. */
class TestServer {
  readonly secure: Array<{ socket: tls.TLSSocket; peer: SpiffeId }> = [];
  readonly rejected: AmbitError[] = [];
  readonly tcp = net.createServer((raw) => this.tls.accept(raw));

  constructor(readonly tls: HboneServerTls) {
    tls.on('secure', (socket, peer) => {
      this.secure.push({ socket, peer });
      socket.on('data', (d) => socket.write(Buffer.concat([Buffer.from('echo:'), d])));
      socket.on('error', () => {});
    });
    tls.on('rejected', (err) => this.rejected.push(err));
  }

  async listen(): Promise<number> {
    this.tcp.listen(0, '127.0.0.1');
    await once(this.tcp, 'listening');
    return (this.tcp.address() as net.AddressInfo).port;
  }

  /** The first verdict after this call; each test uses its own server, so it belongs to that test's client. */
  async nextVerdict(): Promise<{ socket: tls.TLSSocket; peer: SpiffeId } | AmbitError> {
    return Promise.race([
      once(this.tls, 'secure').then(([socket, peer]) => ({
        socket: socket as tls.TLSSocket,
        peer: peer as SpiffeId,
      })),
      once(this.tls, 'rejected').then(([err]) => err as AmbitError),
    ]);
  }

  close(): void {
    for (const { socket } of this.secure) socket.destroy();
    this.tls.close();
    this.tcp.close();
  }
}

/** Resolves once `socket` is closed, with whatever it received before. */
async function drained(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.on('error', () => {});
  // Not events.once: it would reject on the 'error' that precedes 'close'.
  if (!socket.destroyed) await new Promise((resolve) => socket.once('close', resolve));
  return Buffer.concat(chunks);
}

describe('HBONE mutual TLS', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let keepAlive: NodeJS.Timeout;
  const managers: CertificateManager[] = [];
  let mesh: HboneTlsContexts; // cluster.local, trusts cluster.local and other.td roots
  let foreign: HboneTlsContexts; // other.td, trusts both
  let rogue: HboneTlsContexts; // cluster.local identities from an untrusted CA
  const servers: TestServer[] = [];
  let server: TestServer;
  let port: number;

  function contexts(ca: CertificateAuthority, ttlSeconds = 600): HboneTlsContexts {
    const manager = new CertificateManager({ ca, ttlSeconds });
    managers.push(manager);
    return new HboneTlsContexts(manager);
  }

  before(async () => {
    keepAlive = setInterval(() => {}, 1000);
    setLogSink({ write: () => {} });
    dir = await tempDir();
    const main = await LocalCa.open(join(dir.path, 'main'), { trustDomain: 'cluster.local' });
    const other = await LocalCa.open(join(dir.path, 'other'), { trustDomain: 'other.td' });
    const untrusted = await LocalCa.open(join(dir.path, 'untrusted'), { trustDomain: 'cluster.local' });
    mesh = contexts(withExtraRoots(main, other));
    foreign = contexts(withExtraRoots(other, main));
    rogue = contexts(untrusted);
  });

  beforeEach(async () => {
    server = new TestServer(await HboneServerTls.create(mesh, SERVER));
    servers.push(server);
    port = await server.listen();
  });

  afterEach(() => {
    for (const s of servers.splice(0)) s.close();
  });

  after(async () => {
    for (const m of managers) m.close();
    clearInterval(keepAlive);
    setLogSink(process.stdout);
    await dir.remove();
  });

  it('completes a mutual handshake: TLS 1.3, ALPN h2, an allowed suite, identities read back both ways', async () => {
    const verdict = server.nextVerdict();
    const { socket, peer } = await connectHbone(mesh, {
      source: CLIENT,
      expected: [SERVER],
      host: '127.0.0.1',
      port,
    });
    try {
      assert.equal(peer, SERVER);
      assert.equal(peerIdentity(socket), SERVER);
      assert.equal(socket.getProtocol(), 'TLSv1.3');
      assert.equal(socket.alpnProtocol, 'h2');
      assert.ok(
        HBONE_CIPHERS.split(':').includes(socket.getCipher().standardName),
        socket.getCipher().standardName,
      );
      assert.equal(socket.isSessionReused(), false);
      const accepted = await verdict;
      assert.ok(!(accepted instanceof AmbitError), String(accepted));
      assert.equal(accepted.peer, CLIENT);
      assert.equal(peerIdentity(accepted.socket), CLIENT);
      assert.equal(accepted.socket.getProtocol(), 'TLSv1.3');
      assert.equal(accepted.socket.alpnProtocol, 'h2');
      socket.write('ping');
      const [reply] = await once(socket, 'data');
      assert.equal(reply.toString(), 'echo:ping');
    } finally {
      socket.destroy();
    }
  });

  it('accepts a server matching any one of several expected identities, over a caller-made TCP socket', async () => {
    const tcp = net.connect(port, '127.0.0.1');
    const other = parseSpiffeId('spiffe://cluster.local/ns/srv/sa/other');
    const { socket, peer } = await connectHbone(mesh, {
      source: CLIENT,
      expected: [other, SERVER],
      socket: tcp,
    });
    assert.equal(peer, SERVER);
    assert.equal(socket.isSessionReused(), false, 'no resumption on a second connection either');
    socket.destroy();
  });

  it('the client rejects a server whose identity is not the expected one', async () => {
    const wanted = parseSpiffeId('spiffe://cluster.local/ns/srv/sa/database');
    await assert.rejects(
      connectHbone(mesh, { source: CLIENT, expected: [wanted], host: '127.0.0.1', port }),
      (err: AmbitError) => {
        assert.equal(err.code, 'ERR_IDENTITY_MISMATCH');
        assert.match(
          err.message,
          /presented spiffe:\/\/cluster\.local\/ns\/srv\/sa\/server, expected .*database/,
        );
        return true;
      },
    );
    await assert.rejects(connectHbone(mesh, { source: CLIENT, expected: [], host: '127.0.0.1', port }), {
      code: 'ERR_NO_EXPECTED_IDENTITY',
    });
  });

  it('the server rejects a client of another trust domain even when its CA is trusted', async () => {
    const verdict = server.nextVerdict();
    const { socket } = await connectHbone(foreign, {
      source: FOREIGN_CLIENT,
      expected: [SERVER],
      host: '127.0.0.1',
      port,
    });
    const got = await verdict;
    assert.ok(got instanceof AmbitError && got.code === 'ERR_TRUST_DOMAIN', String(got));
    assert.match(got.message, /other\.td.*cluster\.local/);
    socket.write('hello');
    assert.equal((await drained(socket)).length, 0, 'the rejected client never gets an answer');
  });

  it('the server rejects a client whose certificate comes from an untrusted CA', async () => {
    const verdict = server.nextVerdict();
    const raw = tls.connect({
      ...(await rogue.clientOptions(CLIENT, [SERVER])),
      rejectUnauthorized: false,
      host: '127.0.0.1',
      port,
    });
    raw.on('error', () => {});
    const got = await verdict;
    assert.ok(got instanceof AmbitError && got.code === 'ERR_PEER_UNTRUSTED', String(got));
    assert.equal((await drained(raw)).length, 0);
  });

  it('the server rejects a client without a certificate', async () => {
    const verdict = server.nextVerdict();
    const { context } = await mesh.secureContext(CLIENT);
    const raw = tls.connect({
      host: '127.0.0.1',
      port,
      ca: (await managers[0]!.fetch(CLIENT)).rootPem,
      minVersion: 'TLSv1.3',
      ALPNProtocols: ['h2'],
      checkServerIdentity: () => undefined,
    });
    raw.on('error', () => {});
    assert.ok(context);
    const got = await verdict;
    assert.ok(got instanceof AmbitError && got.code === 'ERR_NO_PEER_CERTIFICATE', String(got));
    raw.write('hello');
    assert.equal((await drained(raw)).length, 0);
  });

  it('the server refuses TLS 1.2', async () => {
    const verdict = server.nextVerdict();
    const cert = await managers[0]!.fetch(CLIENT);
    const raw = tls.connect({
      host: '127.0.0.1',
      port,
      key: cert.privateKeyPem(),
      cert: cert.certChainPem.join(''),
      ca: cert.rootPem,
      maxVersion: 'TLSv1.2',
      ALPNProtocols: ['h2'],
      checkServerIdentity: () => undefined,
    });
    raw.on('error', () => {});
    const got = await verdict;
    assert.ok(got instanceof AmbitError && got.code === 'ERR_TLS_HANDSHAKE', String(got));
    await drained(raw);
  });

  it('the client rejects a server from an untrusted CA', async () => {
    const rogueServer = new TestServer(await HboneServerTls.create(rogue, SERVER));
    servers.push(rogueServer);
    {
      const roguePort = await rogueServer.listen();
      await assert.rejects(
        connectHbone(mesh, { source: CLIENT, expected: [SERVER], host: '127.0.0.1', port: roguePort }),
        (err: AmbitError) => {
          assert.equal(err.code, 'ERR_PEER_UNTRUSTED');
          return true;
        },
      );
    }
  });

  it('sends no SNI, only TLS 1.3 and the two AES-GCM suites, and offers ALPN h2', async () => {
    const capture = net.createServer();
    capture.listen(0, '127.0.0.1');
    await once(capture, 'listening');
    const capturePort = (capture.address() as net.AddressInfo).port;
    const helloFrom = async (dial: () => tls.TLSSocket): Promise<ClientHello> => {
      const accepted = once(capture, 'connection');
      const client = dial();
      client.on('error', () => {});
      const [sock] = (await accepted) as [net.Socket];
      const hello = await readClientHello(sock);
      sock.destroy();
      client.destroy();
      return hello;
    };
    try {
      const options = await mesh.clientOptions(CLIENT, [SERVER]);
      const ours = await helloFrom(() => tls.connect({ ...options, host: '127.0.0.1', port: capturePort }));
      assert.equal(ours.extensions.has(EXT_SERVER_NAME), false, 'no server_name extension');
      assert.deepEqual(ours.alpn, ['h2']);
      assert.deepEqual(ours.supportedVersions, [0x0304]);
      assert.deepEqual(
        ours.cipherSuites.filter((s) => s !== 0x00ff),
        [0x1302, 0x1301],
      );
      // The parser does see SNI when a client sends it, so the assertion above can fail.
      const withSni = await helloFrom(() =>
        tls.connect({ host: '127.0.0.1', port: capturePort, servername: 'example.com' }),
      );
      assert.equal(withSni.extensions.has(EXT_SERVER_NAME), true);
    } finally {
      capture.close();
    }
  });

  it('closes a client that has not finished its handshake by the deadline, even one that keeps sending bytes', async () => {
    const limited = new TestServer(await HboneServerTls.create(mesh, SERVER, { handshakeTimeoutMs: 500 }));
    servers.push(limited);
    const limitedPort = await limited.listen();
    const idle = net.connect(limitedPort, '127.0.0.1');
    const slow = net.connect(limitedPort, '127.0.0.1');
    // A byte every 100 ms: Node's own handshake timeout would restart on each one and never fire.
    const hello = Buffer.from('16030102000100', 'hex');
    let sent = 0;
    const drip = setInterval(() => {
      if (sent < hello.length && !slow.destroyed) slow.write(hello.subarray(sent, ++sent));
    }, 100);
    const started = Date.now();
    try {
      await Promise.all([drained(idle), drained(slow)]);
    } finally {
      clearInterval(drip);
    }
    assert.ok(Date.now() - started < 10_000, 'closed by the 500 ms deadline, not by a client');
    assert.equal(limited.rejected.length, 2);
    for (const err of limited.rejected) assert.equal(err.code, 'ERR_TLS_HANDSHAKE_TIMEOUT');
    assert.equal(limited.tls.pendingHandshakes, 0);
  });

  it('bounds handshakes in progress by cutting the oldest; a real client still gets through', async () => {
    const limited = new TestServer(await HboneServerTls.create(mesh, SERVER, { maxPendingHandshakes: 4 }));
    servers.push(limited);
    const limitedPort = await limited.listen();
    const idle: net.Socket[] = [];
    for (let i = 0; i < 10; i++) {
      const s = net.connect(limitedPort, '127.0.0.1');
      await once(s, 'connect');
      idle.push(s);
    }
    // The first six were cut as newer ones arrived; four are still waiting.
    await Promise.all(idle.slice(0, 6).map(drained));
    assert.equal(limited.tls.pendingHandshakes, 4);
    assert.ok(limited.rejected.every((e) => e.code === 'ERR_TLS_HANDSHAKE_LIMIT'));
    const { socket, peer } = await connectHbone(mesh, {
      source: CLIENT,
      expected: [SERVER],
      host: '127.0.0.1',
      port: limitedPort,
    });
    assert.equal(peer, SERVER);
    socket.destroy();
    for (const s of idle) s.destroy();
  });

  it('caches one secure context per identity and rebuilds it when the certificate rotates', async () => {
    const dirCa = await LocalCa.open(join(dir.path, 'main'), { trustDomain: 'cluster.local' });
    const short = contexts(dirCa, 4);
    const first = await short.secureContext(SERVER);
    assert.equal(await short.secureContext(SERVER), first, 'same context for the next connection');
    const rotatingServer = new TestServer(await HboneServerTls.create(short, SERVER));
    servers.push(rotatingServer);
    {
      const rotPort = await rotatingServer.listen();
      const [serial] = await once(rotatingServer.tls, 'reloaded');
      const second = await short.secureContext(SERVER);
      assert.notEqual(second, first);
      assert.equal(second.certificate.serialNumber, serial);
      assert.notEqual(serial, first.certificate.serialNumber);
      const { socket } = await connectHbone(short, {
        source: CLIENT,
        expected: [SERVER],
        host: '127.0.0.1',
        port: rotPort,
      });
      assert.equal(socket.getPeerCertificate().serialNumber.toLowerCase(), serial.toLowerCase());
      socket.destroy();
    }
  });
});

const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;

interface ClientHello {
  cipherSuites: number[];
  extensions: Map<number, Buffer>;
  alpn: string[];
  supportedVersions: number[];
}

/** Reads one TLS record from `sock` and decodes the ClientHello fields the test checks (RFC 8446 4.1.2). */
async function readClientHello(sock: net.Socket): Promise<ClientHello> {
  let buf = Buffer.alloc(0);
  while (buf.length < 5 || buf.length < 5 + buf.readUInt16BE(3)) {
    const [chunk] = (await once(sock, 'data')) as [Buffer];
    buf = Buffer.concat([buf, chunk]);
  }
  assert.equal(buf[0], 22, 'handshake record');
  assert.equal(buf[5], 1, 'ClientHello');
  let p = 5 + 4 + 2 + 32; // record header, handshake header, legacy_version, random
  p += 1 + buf[p]!; // session id
  const suitesLen = buf.readUInt16BE(p);
  const cipherSuites: number[] = [];
  for (let i = 0; i < suitesLen; i += 2) cipherSuites.push(buf.readUInt16BE(p + 2 + i));
  p += 2 + suitesLen;
  p += 1 + buf[p]!; // compression methods
  const end = p + 2 + buf.readUInt16BE(p);
  p += 2;
  const extensions = new Map<number, Buffer>();
  while (p < end) {
    const type = buf.readUInt16BE(p);
    const len = buf.readUInt16BE(p + 2);
    extensions.set(type, buf.subarray(p + 4, p + 4 + len));
    p += 4 + len;
  }
  const alpn: string[] = [];
  const alpnExt = extensions.get(EXT_ALPN);
  for (let q = 2; alpnExt && q < alpnExt.length; q += 1 + alpnExt[q]!) {
    alpn.push(alpnExt.subarray(q + 1, q + 1 + alpnExt[q]!).toString());
  }
  const supportedVersions: number[] = [];
  const versions = extensions.get(EXT_SUPPORTED_VERSIONS);
  for (let q = 1; versions && q < versions.length; q += 2) supportedVersions.push(versions.readUInt16BE(q));
  return { cipherSuites, extensions, alpn, supportedVersions };
}
