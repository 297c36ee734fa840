import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { CniEventServer, type CniRequest } from '../../src/agent/cni-event-server.js';
import { type CniAddEvent, wireIps } from '../../src/cni/event.js';
import { agentNotReady, postCmdAdd } from '../../src/cni/plugin/agent-client.js';

let dir: string;
let socketPath: string;
let server: CniEventServer | undefined;
let events: CniAddEvent[];
let statuses: number[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ambit-cni-ev-'));
  socketPath = join(dir, 'run', 'pluginevent.sock');
  events = [];
  statuses = [];
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function start(
  onAdd?: (e: CniAddEvent, request: CniRequest) => Promise<void>,
  notReady?: () => string | undefined,
) {
  server = await CniEventServer.listen({
    socketPath,
    onAdd:
      onAdd ??
      (async (e) => {
        events.push(e);
      }),
    notReady,
    onResponse: (s) => statuses.push(s),
  });
}

function raw(method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => {
        text += c.toString('utf8');
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const wireBody = {
  Netns: '/var/run/netns/cni-1234',
  PodName: 'web-0',
  PodNamespace: 'shop',
  IPs: [
    { Interface: 0, Address: { IP: '::ffff:10.1.2.3', Mask: '////AA==' }, Gateway: '10.1.2.1' },
    { Interface: null, Address: { IP: 'fd00::5', Mask: '/////////////////////w==' }, Gateway: '' },
  ],
};

describe('agent CNI event server', () => {
  it("a plugin that hangs up mid-request aborts the handler's signal, and nothing is answered", async () => {
    let request: CniRequest | undefined;
    let entered: () => void;
    const inHandler = new Promise<void>((r) => {
      entered = r;
    });
    await start(async (_e, req) => {
      request = req;
      entered();
      // A slow enrollment: it only ends once the caller is gone.
      await new Promise<void>((r) => req.signal.addEventListener('abort', () => r()));
    });
    const before = process.hrtime.bigint();
    const client = http.request({ socketPath, method: 'POST', path: '/cmdadd' });
    const closed = new Promise<void>((r) => client.on('close', () => r()));
    client.on('error', () => {});
    client.on('response', () => assert.fail('the agent answered a caller that had gone'));
    client.end(JSON.stringify(wireBody));
    await inHandler;
    assert.equal(request!.signal.aborted, false);
    assert.ok(request!.receivedAt >= before, 'stamped with its arrival');
    client.destroy();
    await closed;
    await new Promise<void>((r) =>
      request!.signal.aborted ? r() : request!.signal.addEventListener('abort', () => r()),
    );
    assert.equal(request!.signal.aborted, true);
    assert.deepEqual(statuses, [], 'no response was counted');
  });

  it('a valid /cmdadd reaches the handler with the netns and unmapped IPs, and gets 200', async () => {
    await start();
    const res = await raw('POST', '/cmdadd', JSON.stringify(wireBody));
    assert.equal(res.status, 200);
    assert.deepEqual(events, [
      {
        netns: '/var/run/netns/cni-1234',
        podName: 'web-0',
        podNamespace: 'shop',
        ips: ['10.1.2.3', 'fd00::5'],
      },
    ]);
    assert.deepEqual(statuses, [200]);
  });

  it('unparsable or empty bodies and bad fields get 400 and never reach the handler', async () => {
    await start();
    for (const body of [
      '{nope',
      '',
      '[]',
      JSON.stringify({ ...wireBody, PodName: '' }),
      JSON.stringify({ ...wireBody, IPs: [{ Address: { IP: 'x' } }] }),
    ]) {
      const res = await raw('POST', '/cmdadd', body);
      assert.equal(res.status, 400, `body ${body}`);
      assert.match(res.text, /invalid CNI event/);
    }
    assert.equal(events.length, 0);
    assert.deepEqual(statuses, [400, 400, 400, 400, 400]);
  });

  it('a failing handler gives 500 with its error text; the server keeps serving', async () => {
    let fail = true;
    await start(async (e) => {
      if (fail) throw new Error('ztunnel not connected');
      events.push(e);
    });
    const res = await raw('POST', '/cmdadd', JSON.stringify(wireBody));
    assert.equal(res.status, 500);
    assert.match(res.text, /ztunnel not connected/);
    fail = false;
    assert.equal((await raw('POST', '/cmdadd', JSON.stringify(wireBody))).status, 200);
    assert.equal(events.length, 1);
  });

  it('the plugin client round-trips: 200 resolves, non-200 rejects with the reason', async () => {
    let fail = false;
    await start(async (e) => {
      if (fail) throw new Error('pod shop/web-0 unexpectedly not eligible');
      events.push(e);
    });
    await postCmdAdd(socketPath, {
      Netns: '/proc/1/ns/net',
      PodName: 'a',
      PodNamespace: 'b',
      IPs: wireIps([{ address: '10.9.0.7/16', gateway: '10.9.0.1', interface: 2 }]),
    });
    assert.deepEqual(events[0]?.ips, ['10.9.0.7']);
    fail = true;
    await assert.rejects(
      postCmdAdd(socketPath, { Netns: '/x', PodName: 'web-0', PodNamespace: 'shop', IPs: [] }),
      { code: 'AGENT_REFUSED', message: /HTTP 500: pod shop\/web-0 unexpectedly not eligible/ },
    );
  });

  it('socket is 0600, a stale socket file is replaced, and close removes it', async () => {
    await start();
    await server!.close();
    server = undefined;
    writeFileSync(socketPath, 'stale');
    await start();
    assert.equal(statSync(socketPath).mode & 0o777, 0o600);
    assert.ok(statSync(socketPath).isSocket());
    assert.equal((await raw('POST', '/cmdadd', JSON.stringify(wireBody))).status, 200);
    await server!.close();
    server = undefined;
    assert.throws(() => statSync(socketPath), { code: 'ENOENT' });
  });

  it('other paths and methods get 404/405; /status follows readiness', async () => {
    let why: string | undefined = 'informer caches not synced';
    await start(undefined, () => why);
    assert.equal((await raw('GET', '/cmdadd')).status, 405);
    assert.equal((await raw('POST', '/other', '{}')).status, 404);
    assert.match((await agentNotReady(socketPath)) ?? '', /HTTP 503.*informer caches not synced/);
    why = undefined;
    assert.equal(await agentNotReady(socketPath), undefined);
  });
});

describe('event wire format', () => {
  it("IPs use Istio's shape: Interface nullable, base64 mask bytes, Gateway ''", () => {
    assert.deepEqual(
      wireIps([{ address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 }, { address: 'fd00::2/64' }]),
      [
        { Interface: 0, Address: { IP: '10.0.0.2', Mask: '////AA==' }, Gateway: '10.0.0.1' },
        { Interface: null, Address: { IP: 'fd00::2', Mask: '//////////8AAAAAAAAAAA==' }, Gateway: '' },
      ],
    );
    assert.throws(() => wireIps([{ address: '10.0.0.2' }]), { code: 'CNI_RESULT_INVALID' });
    assert.throws(() => wireIps([{ address: '10.0.0.2/33' }]), { code: 'CNI_RESULT_INVALID' });
  });
});
