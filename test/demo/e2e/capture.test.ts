/**
 * The demo's proof of encryption, checked against real captures between two network namespaces:
 * plain TCP carrying a marker is reported as not TLS with the marker visible, and the same marker
 * sent over TLS is reported as TLS records with the marker absent. So the demo's step can fail.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect, createServer as tlsServer } from 'node:tls';
import { readPcap, streamsOf } from '../../../src/demo/pcap.js';
import { startCapture } from '../../../src/lab/capture.js';
import { connected, connectInNetns, listenInNetns, NetnsHandle } from '../../../src/sys/index.js';
import { VethPair } from '../../helpers/netns.js';

const PORT = 15008;
let pair: VethPair;
let clientNs: NetnsHandle;
let serverNs: NetnsHandle;
let certDir: string;

/** The veth end inside namespace `a`: the interface the demo would capture on (its eth0). */
function vethOf(p: VethPair): string {
  const link = p.a
    .exec('ip', ['-o', 'link', 'show'])
    .split('\n')
    .map((l) => l.split(': ')[1]?.split('@')[0])
    .find((name) => name?.startsWith('ambit'));
  assert.ok(link);
  return link;
}

/** Sends `marker` from a to b (echoed back) while capturing on a's veth; returns the pcap. */
async function captured(server: Server, send: () => Promise<Socket>, marker: string): Promise<Buffer> {
  const capture = await startCapture(pair.a.name, vethOf(pair), 'tcp');
  let socket: Socket | undefined;
  try {
    socket = await send();
    const echoed = new Promise<string>((resolve) => {
      let text = '';
      socket!.setEncoding('utf8').on('data', (d: string) => {
        text += d;
        if (text.length >= marker.length) resolve(text);
      });
    });
    socket.write(marker);
    assert.equal(await echoed, marker);
  } finally {
    socket?.destroy();
    server.close();
  }
  return capture.stop();
}

before(() => {
  pair = new VethPair();
  clientNs = NetnsHandle.open(pair.a.path);
  serverNs = NetnsHandle.open(pair.b.path);
  certDir = mkdtempSync(join(tmpdir(), 'ambit-demo-cert-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      '/CN=ambit-demo-test',
      '-days',
      '1',
      '-keyout',
      join(certDir, 'key.pem'),
      '-out',
      join(certDir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
});

after(() => {
  clientNs?.close();
  serverNs?.close();
  pair?.remove();
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

describe('demo capture analysis on real traffic', () => {
  test('plain TCP: the bytes are not TLS and the marker is in the capture', async () => {
    const marker = `ambit-demo-secret-plain-${process.pid}`;
    const server = await listenInNetns(serverNs, { host: pair.addrB, port: PORT });
    server.on('connection', (s) => s.pipe(s).on('error', () => {}));
    const pcap = await captured(
      server,
      () => connected(connectInNetns(clientNs, { host: pair.addrB, port: PORT })),
      marker,
    );
    assert.ok(pcap.includes(marker), 'the plaintext marker is on the wire');
    const streams = streamsOf(readPcap(pcap).segments).filter((s) => s.bytes > 0);
    const out = streams.find((s) => s.toPort === PORT);
    assert.ok(out, 'the client to server stream was captured');
    assert.equal(out.fromStart, true, 'the SYN was captured');
    assert.equal(out.tls, undefined, 'plain bytes are not read as TLS records');
  });

  test('TLS: the bytes are handshake and application data records, the marker is not in the capture', async () => {
    const marker = `ambit-demo-secret-tls-${process.pid}`;
    const server = tlsServer({
      key: readFileSync(join(certDir, 'key.pem')),
      cert: readFileSync(join(certDir, 'cert.pem')),
    });
    server.on('secureConnection', (s) => s.pipe(s).on('error', () => {}));
    // The listening socket is made in the server's netns; TLS is layered on each accepted socket.
    const raw = await listenInNetns(serverNs, { host: pair.addrB, port: PORT });
    raw.on('connection', (s) => server.emit('connection', s));
    const pcap = await captured(
      server,
      async () => {
        const tcp = await connected(connectInNetns(clientNs, { host: pair.addrB, port: PORT }));
        const tls = tlsConnect({ socket: tcp, rejectUnauthorized: false });
        await new Promise<void>((resolve, reject) =>
          tls.once('secureConnect', resolve).once('error', reject),
        );
        return tls;
      },
      marker,
    ).finally(() => raw.close());
    assert.equal(pcap.includes(marker), false, 'the marker is not on the wire');
    const streams = streamsOf(readPcap(pcap).segments).filter((s) => s.bytes > 0);
    assert.equal(streams.length, 2, 'both directions carried bytes');
    for (const s of streams) {
      assert.ok(s.tls, `${s.fromPort} > ${s.toPort} read as TLS`);
      assert.ok((s.tls['handshake'] ?? 0) > 0, 'handshake records');
      assert.ok(
        (s.tls['application_data'] ?? 0) > 0,
        `application data records: ${JSON.stringify(s.tls)} ${s.fromPort}>${s.toPort} ${s.bytes}`,
      );
    }
  });
});
