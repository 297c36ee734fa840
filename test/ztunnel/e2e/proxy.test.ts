/**
 * The per-pod proxy on the real kernel: two pods joined by a veth, the seed's rules applied in both,
 * a PodProxy inside each, and an app in pod B. Bytes go client -> A:15001 -> B:15006 -> app.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Server, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { parseLocalConfig } from '../../../src/discovery/local-config.js';
import { WorkloadStore } from '../../../src/discovery/store.js';
import { createRedirector } from '../../../src/redirect/index.js';
import { setLogSink } from '../../../src/runtime/log.js';
import { Registry } from '../../../src/runtime/metrics.js';
import { connected, connectInNetns, listenInNetns, NetnsHandle } from '../../../src/sys/index.js';
import type { WorkloadUid } from '../../../src/zds/messages.js';
import type { ProxyFactory } from '../../../src/ztunnel/proxy-factory.js';
import { readAll, sha256, waitFor } from '../../helpers/bytes.js';
import { openFdCount, run, VethPair } from '../../helpers/netns.js';
import { testProxyFactory } from '../../helpers/proxy-factory.js';

const logLines: string[] = [];

/** Reads everything until the peer ends its side. */
/** How a socket's connection ended: EOF (a FIN), the error code (a reset is ECONNRESET), or closed. */
function endOf(s: Socket): Promise<string> {
  return new Promise((resolve) => {
    s.once('end', () => resolve('EOF'));
    s.once('error', (e: Error & { code?: string }) => resolve(e.code ?? 'error'));
    s.once('close', () => resolve('closed'));
  });
}

describe('ztunnel per-pod proxy (plaintext paths)', () => {
  let pair: VethPair;
  let a: NetnsHandle;
  let b: NetnsHandle;
  let factory: ProxyFactory;
  let registry: Registry;
  let store: WorkloadStore;
  let app: Server;
  const appSeen: { remote: string; data: Buffer }[] = [];
  const appSockets = new Set<Socket>();
  let appMode: 'echo' | 'sink-then-reply' | 'reset' = 'echo';
  const reply = randomBytes(10 * 1024 * 1024);

  before(async () => {
    setLogSink({ write: (l: string) => void logLines.push(l) });
    pair = new VethPair();
    a = NetnsHandle.open(pair.a.path);
    b = NetnsHandle.open(pair.b.path);
    const redirector = createRedirector({ backend: 'iptables', inbound: 'tproxy' });
    await redirector.apply(a, [pair.addrA]);
    await redirector.apply(b, [pair.addrB]);
    registry = new Registry();
    store = new WorkloadStore();
    factory = testProxyFactory({ store, registry, socks5: true });
    const info = (name: string) => ({ name, namespace: 'default', serviceAccount: 'default' });
    await factory.start('pod-a' as WorkloadUid, info('a'), a);
    await factory.start('pod-b' as WorkloadUid, info('b'), b);
    // The app: a plain socket in pod B (no mark, no transparency), as an application would have.
    app = await listenInNetns(b, { port: 8000, host: '::', backlog: 1024, server: { allowHalfOpen: true } });
    app.on('connection', (s: Socket) => {
      s.on('error', () => {});
      appSockets.add(s);
      s.once('close', () => appSockets.delete(s));
      if (appMode === 'reset') {
        s.once('data', () => s.resetAndDestroy());
        return;
      }
      if (appMode === 'echo') {
        s.pipe(s);
        return;
      }
      void readAll(s).then((data) => {
        appSeen.push({ remote: s.remoteAddress ?? '', data });
        s.end(reply);
      });
    });
  });

  after(async () => {
    setLogSink(process.stdout);
    await Promise.all([...factory.proxies.values()].map((p) => p.stop('immediate')));
    for (const s of appSockets) s.destroy();
    await new Promise((r) => app?.close(r));
    a?.close();
    b?.close();
    pair?.remove();
  });

  test('the pod lists the seed four listeners, owned by this process', () => {
    const out = pair.a.exec('ss', ['-Hntlp']);
    for (const addr of ['*:15001', '*:15006', '*:15008', '127.0.0.1:15080']) {
      const line = out.split('\n').find((l) => l.includes(` ${addr} `));
      assert.ok(line, `${addr} in:\n${out}`);
      assert.match(line, new RegExp(`pid=${process.pid}\\b`));
    }
  });

  test('pod A -> pod B app: 10 MiB each way intact, half-close, the app sees pod A as source, logged and counted', async () => {
    appMode = 'sink-then-reply';
    const request = randomBytes(10 * 1024 * 1024);
    const client = await connected(connectInNetns(a, { host: pair.addrB, port: 8000, allowHalfOpen: true }));
    const got = readAll(client);
    client.end(request); // half-close: the app only replies after our EOF
    const received = await got;
    assert.equal(sha256(received), sha256(reply));
    await waitFor(() => appSeen.length === 1, 'the app to finish');
    assert.equal(sha256(appSeen[0]!.data), sha256(request));
    assert.equal(appSeen[0]!.remote.replace('::ffff:', ''), pair.addrA, 'the app sees the client pod IP');
    client.destroy();

    await waitFor(
      () => logLines.filter((l) => l.includes('connection complete')).length >= 2,
      'both access logs',
    );
    const out = logLines.find(
      (l) => l.includes('connection complete') && l.includes('direction="outbound"'),
    )!;
    const inb = logLines.find((l) => l.includes('connection complete') && l.includes('direction="inbound"'))!;
    assert.match(out, new RegExp(`src\\.addr=${pair.addrA}:\\d+ dst\\.addr=${pair.addrB}:8000`));
    assert.match(out, /bytes_sent=10485760 bytes_recv=10485760 duration="\d+ms"/);
    assert.match(inb, new RegExp(`src\\.addr=${pair.addrA}:\\d+ dst\\.addr=${pair.addrB}:8000`));

    const metrics = await registry.metrics();
    assert.match(metrics, /istio_tcp_connections_opened_total\{reporter="source"[^}]*\} 1/);
    assert.match(metrics, /istio_tcp_connections_closed_total\{reporter="destination"[^}]*\} 1/);
    assert.match(metrics, /istio_tcp_received_bytes_total\{reporter="source"[^}]*\} 10485760/);
    assert.match(metrics, /istio_tcp_sent_bytes_total\{reporter="destination"[^}]*\} 10485760/);
  });

  test('a reset by the app reaches the client', async () => {
    appMode = 'reset';
    const client = await connected(connectInNetns(a, { host: pair.addrB, port: 8000 }));
    const err = await new Promise<Error & { code?: string }>((resolve) => {
      client.once('error', resolve);
      client.write('boom');
    });
    assert.equal(err.code, 'ECONNRESET');
  });

  test('1,000 concurrent connections through one pod complete and the fd count returns to baseline', async () => {
    appMode = 'echo';
    const baseline = openFdCount();
    const open = async () => {
      const s = await connected(connectInNetns(a, { host: pair.addrB, port: 8000, allowHalfOpen: true }));
      s.on('error', () => {});
      return s;
    };
    // Opened in waves (a burst of 1,000 SYNs would only measure the listen backlog), then all held open at once.
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 1000; i += 100)
        sockets.push(...(await Promise.all(Array.from({ length: 100 }, open))));
      const proxyA = factory.proxies.get('pod-a' as WorkloadUid)!;
      await waitFor(
        () => proxyA.connectionCount >= 2000,
        'pod A to carry 1,000 downstream + 1,000 upstream sockets',
        60_000,
      );
      const results = await Promise.all(
        sockets.map((s, i) => {
          const body = Buffer.from(`hello ${i}\n`);
          const got = readAll(s);
          s.end(body);
          return got.then((echo) => echo.equals(body));
        }),
      );
      assert.equal(results.filter(Boolean).length, 1000);
    } finally {
      for (const s of sockets) s.destroy();
    }
    await waitFor(
      () => [...factory.proxies.values()].every((p) => p.connectionCount === 0),
      'proxied connections to close',
    );
    await waitFor(() => openFdCount() <= baseline, `fd count back to ${baseline}`);
  });

  test('connecting to 15001 or 15006 from inside the pod is refused as recursive', async () => {
    for (const port of [15001, 15006]) {
      const before = logLines.length;
      const s = connectInNetns(a, { host: '127.0.0.1', port });
      const outcome = await new Promise<string>((resolve) => {
        s.once('error', (e: Error & { code?: string }) => resolve(e.code ?? 'error'));
        s.once('close', () => resolve('closed'));
      });
      assert.ok(outcome === 'ECONNRESET' || outcome === 'closed', outcome);
      await waitFor(
        () => logLines.slice(before).some((l) => l.includes('attempted recursive call to ourselves')),
        'the recursion log',
      );
    }
  });

  test('SOCKS5 on 127.0.0.1:15080 connects by IPv4 through the outbound path', async () => {
    appMode = 'echo';
    const s = await connected(connectInNetns(a, { host: '127.0.0.1', port: 15080, mark: 0x539 }));
    const read = (n: number) =>
      new Promise<Buffer>((resolve) => {
        const tryRead = () => {
          const c = s.read(n) as Buffer | null;
          if (c) resolve(c);
          else s.once('readable', tryRead);
        };
        tryRead();
      });
    s.write(Buffer.from([5, 1, 0]));
    assert.deepEqual(await read(2), Buffer.from([5, 0]));
    const ip = pair.addrB.split('.').map(Number);
    s.write(Buffer.from([5, 1, 0, 1, ...ip, 8000 >> 8, 8000 & 0xff]));
    assert.deepEqual((await read(10)).subarray(0, 2), Buffer.from([5, 0]));
    s.write('via socks\n');
    assert.equal((await read(10)).toString(), 'via socks\n');
    s.destroy();
  });

  test('a policy change that now denies a running plaintext connection cuts it, with resets', async () => {
    appMode = 'echo';
    const client = await connected(connectInNetns(a, { host: pair.addrB, port: 8000 }));
    client.write('before\n');
    await new Promise((r) => client.once('data', r));
    const clientEnd = endOf(client);
    const appEnd = endOf([...appSockets].at(-1)!);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.on('error', () => {});
    const before = logLines.length;
    store.replaceAll({
      workloads: [],
      services: [],
      policies: parseLocalConfig(
        'policies:\n  - {name: no-8000, namespace: default, scope: Namespace, action: Deny, rules: [[[{destinationPorts: [8000]}]]]}\n',
      ).policies,
    });
    try {
      await closed;
      // Cut, not completed: neither app may see a FIN.
      assert.equal(await clientEnd, 'ECONNRESET', 'the client app');
      assert.equal(await appEnd, 'ECONNRESET', 'the server app');
      await waitFor(
        () => logLines.slice(before).some((l) => l.includes('connection closed due to policy change')),
        'the policy-change log line',
      );
      // A new connection is now refused at once.
      const denied = connectInNetns(a, { host: pair.addrB, port: 8000 });
      const outcome = await new Promise<string>((resolve) => {
        denied.once('error', (e: Error & { code?: string }) => resolve(e.code ?? 'error'));
        denied.once('close', () => resolve('closed'));
      });
      assert.ok(outcome === 'ECONNRESET' || outcome === 'closed', outcome);
    } finally {
      store.replaceAll({ workloads: [], services: [], policies: [] });
    }
  });

  test('stopping a pod proxy closes its listeners and cuts its connections at once, with resets', async () => {
    appMode = 'echo';
    const client = await connected(connectInNetns(a, { host: pair.addrB, port: 8000 }));
    const echoed = new Promise((resolve) => client.once('data', resolve));
    client.write('before the cut');
    await echoed;
    const appSide = [...appSockets].at(-1)!;
    // A cut connection is not a complete one: both apps must see a reset, not a FIN.
    const clientEnd = endOf(client);
    const appEnd = endOf(appSide);
    const proxyA = factory.proxies.get('pod-a' as WorkloadUid)!;
    await proxyA.stop('immediate');
    assert.equal(await clientEnd, 'ECONNRESET', 'the client app');
    assert.equal(await appEnd, 'ECONNRESET', 'the server app');
    const out = run('ip', ['netns', 'exec', pair.a.name, 'ss', '-Hntl']);
    assert.doesNotMatch(out, /:1500[168]\b|:15080\b/);
  });
});

describe('ztunnel per-pod proxy with the REDIRECT inbound rules', () => {
  let pair: VethPair;
  let a: NetnsHandle;
  let b: NetnsHandle;
  let factory: ProxyFactory;
  let app: Server;
  const seen: string[] = [];

  before(async () => {
    pair = new VethPair();
    a = NetnsHandle.open(pair.a.path);
    b = NetnsHandle.open(pair.b.path);
    const redirector = createRedirector({ backend: 'iptables', inbound: 'redirect' });
    await redirector.apply(a, [pair.addrA]);
    await redirector.apply(b, [pair.addrB]);
    factory = testProxyFactory({ socks5: true });
    const info = (name: string) => ({ name, namespace: 'default', serviceAccount: 'default' });
    await factory.start('pod-a' as WorkloadUid, info('a'), a);
    await factory.start('pod-b' as WorkloadUid, info('b'), b);
    app = await listenInNetns(b, { port: 8000, server: { allowHalfOpen: true } });
    app.on('connection', (s: Socket) => {
      s.on('error', () => {});
      seen.push((s.remoteAddress ?? '').replace('::ffff:', ''));
      s.pipe(s);
    });
  });

  after(async () => {
    await Promise.all([...(factory?.proxies.values() ?? [])].map((p) => p.stop('immediate')));
    await new Promise((r) => app?.close(r));
    a?.close();
    b?.close();
    pair?.remove();
  });

  test('inbound lands on 15006 via SO_ORIGINAL_DST; the app sees pod A and the bytes come back', async () => {
    const body = randomBytes(1024 * 1024);
    const client = await connected(connectInNetns(a, { host: pair.addrB, port: 8000, allowHalfOpen: true }));
    const echoed = readAll(client);
    client.end(body);
    assert.equal(sha256(await echoed), sha256(body));
    assert.deepEqual(seen, [pair.addrA]);
    client.destroy();
  });

  test('SOCKS5 CONNECT by hostname (ATYP 3) reaches the app through the outbound path', async () => {
    const s = await connected(connectInNetns(a, { host: '127.0.0.1', port: 15080 }));
    const replies: Buffer[] = [];
    s.on('data', (d: Buffer) => replies.push(d));
    const got = async (n: number): Promise<Buffer> => {
      for (let i = 0; i < 500 && Buffer.concat(replies).length < n; i++)
        await new Promise((r) => setTimeout(r, 10));
      return Buffer.concat(replies);
    };
    const host = Buffer.from(pair.addrB); // an IP literal resolves to itself, exercising the hostname path
    s.write(Buffer.from([5, 1, 0]));
    s.write(Buffer.from([5, 1, 0, 3, host.length, ...host, 8000 >> 8, 8000 & 0xff]));
    const head = await got(12);
    assert.deepEqual([...head.subarray(0, 2)], [5, 0], 'method: no authentication');
    assert.deepEqual([...head.subarray(2, 4)], [5, 0], 'request succeeded');
    s.write('by name\n');
    assert.equal((await got(12 + 8)).subarray(12).toString(), 'by name\n');
    s.destroy();
  });
});
