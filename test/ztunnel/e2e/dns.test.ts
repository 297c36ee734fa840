/**
 * ztunnel's DNS proxy on the real kernel: pod A has the in-pod rules with DNS capture and a PodProxy;
 * its DNS client (Node's resolver, c-ares, in a child process inside pod A) asks the resolver at B:53,
 * as a pod's resolv.conf would make it. The rules bring each query to the proxy's 127.0.0.1:15053;
 * service names are answered from the workload store, the rest is forwarded to the upstream resolver —
 * a tiny DNS server this test runs at B:53 (UDP and TCP) — from inside pod A with the proxy's mark.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { Socket as UdpSocket } from 'node:dgram';
import type { Server, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import * as dnsPacket from 'dns-packet';
import { WorkloadStore } from '../../../src/discovery/store.js';
import type { Service } from '../../../src/discovery/types.js';
import { createRedirector } from '../../../src/redirect/index.js';
import { setLogSink } from '../../../src/runtime/log.js';
import {
  connected,
  connectInNetns,
  listenInNetns,
  NetnsHandle,
  udpSocketInNetns,
} from '../../../src/sys/index.js';
import type { WorkloadUid } from '../../../src/zds/messages.js';
import { readTcpMessage, tcpMessageReader, writeTcpMessage } from '../../../src/ztunnel/dns/tcp-framing.js';
import type { ProxyFactory } from '../../../src/ztunnel/proxy-factory.js';
import { VethPair } from '../../helpers/netns.js';
import { testProxyFactory } from '../../helpers/proxy-factory.js';
import { within } from '../../helpers/wait.js';

const execFileAsync = promisify(execFile);
const NS = 'ambit-dns';
const logLines: string[] = [];

function service(name: string, vips: string[]): Service {
  return {
    name,
    namespace: NS,
    hostname: `${name}.${NS}.svc.cluster.local`,
    vips: vips.map((address) => ({ network: '', address })),
    ports: new Map([[80, 8080]]),
    subjectAltNames: [],
    canonical: true,
  };
}

/** 150 IPv4 VIPs: an A answer of ~2.4 KB, more than a UDP answer may carry (512, or c-ares' EDNS 1232). */
const MANY = Array.from({ length: 150 }, (_, i) => `10.97.${Math.floor(i / 200)}.${(i % 200) + 1}`);
/** What the upstream resolver holds: one A name and one TXT name too big for UDP. */
const BIG_TXT = Array.from({ length: 40 }, (_, i) => `${String(i).padStart(2, '0')}${'x'.repeat(198)}`);

interface Seen {
  name: string;
  transport: 'udp' | 'tcp';
  from: string;
}

/** The upstream's answer: A for external.example.test, 40 TXT for big.example.test (TC over UDP), else NXDOMAIN. */
function upstreamAnswer(query: Buffer, transport: 'udp' | 'tcp', seen: Seen[], from: string): Buffer {
  const q = dnsPacket.decode(query);
  const question = q.questions![0]!;
  seen.push({ name: question.name, transport, from });
  const base = { type: 'response' as const, id: q.id, questions: q.questions };
  if (question.name === 'external.example.test' && question.type === 'A')
    return dnsPacket.encode({
      ...base,
      flags: dnsPacket.RECURSION_AVAILABLE,
      answers: [{ type: 'A', name: question.name, ttl: 60, data: '10.200.0.1' }],
    });
  if (question.name === 'big.example.test' && question.type === 'TXT') {
    if (transport === 'udp') return dnsPacket.encode({ ...base, flags: dnsPacket.TRUNCATED_RESPONSE });
    return dnsPacket.encode({
      ...base,
      answers: BIG_TXT.map((data) => ({ type: 'TXT' as const, name: question.name, ttl: 60, data })),
    });
  }
  return dnsPacket.encode({ ...base, flags: 3 }); // NXDOMAIN
}

describe('ztunnel DNS proxy (DNS capture in the pod)', () => {
  let pair: VethPair;
  let a: NetnsHandle;
  let b: NetnsHandle;
  let factory: ProxyFactory;
  let upstreamUdp: UdpSocket;
  let upstreamTcp: Server;
  const upstreamConns = new Set<Socket>();
  const seen: Seen[] = [];

  /** Runs Node's resolver (c-ares) in pod A against B:53; returns each lookup's result or error code. */
  async function resolveInPod(lookups: [string, string][]): Promise<unknown[]> {
    const script = `
      import { promises as dns } from 'node:dns';
      const r = new dns.Resolver({ timeout: 10000, tries: 2 });
      r.setServers([${JSON.stringify(pair.addrB)}]);
      const out = [];
      for (const [method, name] of ${JSON.stringify(lookups)}) {
        try { out.push(await r[method](name)); } catch (e) { out.push({ error: e.code }); }
      }
      process.stdout.write(JSON.stringify(out));`;
    const { stdout } = await within(
      execFileAsync('ip', [
        'netns',
        'exec',
        pair.a.name,
        process.execPath,
        '--input-type=module',
        '-e',
        script,
      ]),
      `the resolver in pod A (${lookups.map((l) => l[1]).join(', ')})`,
      () => `\nztunnel log:\n${logLines.join('')}`,
    );
    return JSON.parse(stdout) as unknown[];
  }

  before(async () => {
    setLogSink({ write: (l: string) => void logLines.push(l) });
    pair = new VethPair();
    a = NetnsHandle.open(pair.a.path);
    b = NetnsHandle.open(pair.b.path);
    await createRedirector({ backend: 'iptables', inbound: 'tproxy', dnsCapture: true }).apply(a, [
      pair.addrA,
    ]);

    upstreamUdp = await udpSocketInNetns(b, { host: pair.addrB, port: 53 });
    upstreamUdp.on('message', (m, r) =>
      upstreamUdp.send(upstreamAnswer(m, 'udp', seen, r.address), r.port, r.address),
    );
    upstreamTcp = await listenInNetns(b, { host: pair.addrB, port: 53 });
    upstreamTcp.on('connection', (s: Socket) => {
      upstreamConns.add(s);
      s.on('close', () => upstreamConns.delete(s));
      s.on('error', () => {});
      s.on(
        'data',
        tcpMessageReader((m) => writeTcpMessage(s, upstreamAnswer(m, 'tcp', seen, s.remoteAddress ?? ''))),
      );
    });

    const store = new WorkloadStore();
    store.apply({ services: [service('httpbin', ['10.96.0.10', 'fd00:96::10']), service('many', MANY)] });
    factory = testProxyFactory({
      store,
      dns: { upstreams: [{ host: pair.addrB, port: 53 }], clusterDomain: 'cluster.local' },
    });
    await factory.start('pod-a' as WorkloadUid, { name: 'sleep', namespace: NS, serviceAccount: 'sleep' }, a);
  });

  after(async () => {
    setLogSink(process.stdout);
    await Promise.all([...(factory?.proxies.values() ?? [])].map((p) => p.stop('immediate')));
    factory?.close();
    upstreamUdp?.close();
    for (const s of upstreamConns) s.destroy();
    await new Promise((r) => (upstreamTcp ? upstreamTcp.close(r) : r(undefined)));
    a?.close();
    b?.close();
    pair?.remove();
  });

  test('the proxy listens on 127.0.0.1:15053, UDP and TCP, in the pod', () => {
    assert.match(pair.a.exec('ss', ['-Hnulp']), /127\.0\.0\.1:15053 /);
    assert.match(pair.a.exec('ss', ['-Hntlp']), /127\.0\.0\.1:15053 /);
  });

  test('a service by its full name: A and AAAA from the workload store, never asked upstream', async () => {
    const [v4, v6] = await resolveInPod([
      ['resolve4', `httpbin.${NS}.svc.cluster.local`],
      ['resolve6', `httpbin.${NS}.svc.cluster.local`],
    ]);
    assert.deepEqual(v4, ['10.96.0.10']);
    assert.deepEqual(v6, ['fd00:96::10']);
    assert.deepEqual(
      seen.filter((s) => s.name.startsWith('httpbin')),
      [],
    );
  });

  test("a service by its short forms, as the pod's search list makes them", async () => {
    const results = await resolveInPod([
      ['resolve4', 'httpbin'],
      ['resolve4', `httpbin.${NS}`],
      ['resolve4', `httpbin.${NS}.svc`],
      // `httpbin.<ns>` with the first search domain appended: a CNAME to `httpbin.<ns>`, then its A.
      ['resolve4', `httpbin.${NS}.${NS}.svc.cluster.local`],
    ]);
    assert.deepEqual(results, [['10.96.0.10'], ['10.96.0.10'], ['10.96.0.10'], ['10.96.0.10']]);
    assert.deepEqual(
      seen.filter((s) => s.name.startsWith('httpbin')),
      [],
    );
  });

  test('an external name is forwarded upstream from the pod (its address, the proxy mark lets it out)', async () => {
    const before = seen.length;
    const [external, unknown] = await resolveInPod([
      ['resolve4', 'external.example.test'],
      ['resolve4', `nosuch.${NS}.svc.cluster.local`],
    ]);
    assert.deepEqual(external, ['10.200.0.1']);
    // A cluster name the store does not know is forwarded too (ztunnel never makes up an NXDOMAIN).
    assert.deepEqual(unknown, { error: 'ENOTFOUND' });
    assert.deepEqual(seen.slice(before), [
      { name: 'external.example.test', transport: 'udp', from: pair.addrA },
      { name: `nosuch.${NS}.svc.cluster.local`, transport: 'udp', from: pair.addrA },
    ]);
  });

  test('a malformed query gets FORMERR with its id (UDP and TCP); the proxy keeps answering', async () => {
    // An unmarked socket in pod A, as an app's: its datagram to B:53 is captured like any query.
    const app = await udpSocketInNetns(a, { host: pair.addrA });
    try {
      const replies: Buffer[] = [];
      app.on('message', (m) => replies.push(m));
      app.send(Buffer.from([0x12]), 53, pair.addrB); // shorter than a header: dropped
      // A header claiming one question, then a label running past the end.
      const garbage = Buffer.from([0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f, 0x61, 0x62]);
      app.send(garbage, 53, pair.addrB);
      const reply = await within(
        new Promise<Buffer>((resolve) => {
          const check = () => (replies[0] ? resolve(replies[0]) : setTimeout(check, 20));
          check();
        }),
        'the FORMERR answer',
      );
      assert.equal(reply.length, 12);
      assert.equal(reply.readUInt16BE(0), 0xbeef);
      assert.equal(reply.readUInt16BE(2) & 0x8000, 0x8000, 'a response');
      assert.equal(reply.readUInt16BE(2) & 0xf, 1, 'RCODE FORMERR');
    } finally {
      app.close();
    }

    const tcp = await connected(connectInNetns(a, { host: pair.addrB, port: 53 }));
    try {
      writeTcpMessage(tcp, Buffer.from([0xca, 0xfe, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff]));
      const answer = await within(readTcpMessage(tcp), 'the FORMERR answer over TCP');
      assert.ok(answer);
      assert.equal(answer.readUInt16BE(0), 0xcafe);
      assert.equal(answer.readUInt16BE(2) & 0xf, 1, 'RCODE FORMERR');
    } finally {
      tcp.destroy();
    }
    assert.deepEqual(await resolveInPod([['resolve4', 'httpbin']]), [['10.96.0.10']]);
  });

  test('an answer too big for UDP is truncated (TC) and the client gets it whole over TCP', async () => {
    const before = seen.length;
    const [txt, many] = await resolveInPod([
      ['resolveTxt', 'big.example.test'],
      ['resolve4', `many.${NS}.svc.cluster.local`],
    ]);
    // Forwarded: the upstream truncated over UDP; the retry over TCP was captured and forwarded over TCP.
    assert.deepEqual(
      (txt as string[][]).map((chunks) => chunks.join('')),
      BIG_TXT,
    );
    assert.deepEqual(seen.slice(before), [
      { name: 'big.example.test', transport: 'udp', from: pair.addrA },
      { name: 'big.example.test', transport: 'tcp', from: pair.addrA },
    ]);
    // Answered locally: 150 VIPs do not fit a UDP answer, all come over TCP.
    assert.deepEqual([...(many as string[])].sort(), [...MANY].sort());
  });
});
