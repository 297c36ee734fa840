/** Agent-side deadlines: a proxy that never says hello, and one that never acknowledges. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { connectSeqpacket, NetnsHandle } from '../../../src/sys/index.js';
import { decodeRequest, encodeHello, workloadUid, ZdsServer } from '../../../src/zds/index.js';
import { RawPeer } from '../../zds/fixtures/raw-peer.js';

describe('ZDS server deadlines', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-zds-srv-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('drops a peer that sends no hello within the deadline', async () => {
    const server = ZdsServer.listen({
      path: join(dir, 'a.sock'),
      pods: { snapshot: () => [] },
      helloTimeoutMs: 100,
    });
    try {
      const peer = new RawPeer(connectSeqpacket(server.path));
      assert.equal(await peer.next(), 'closed');
      assert.equal(server.connectionCount, 0);
    } finally {
      server.close();
    }
  });

  it('fails an Add that is not acknowledged in time and drops that connection', async () => {
    const server = ZdsServer.listen({
      path: join(dir, 'b.sock'),
      pods: { snapshot: () => [] },
      ackTimeoutMs: 100,
    });
    const netns = NetnsHandle.current();
    try {
      const peer = new RawPeer(connectSeqpacket(server.path));
      await peer.send(encodeHello({ version: 1 }));
      const snap = await peer.next();
      assert.ok(snap !== 'closed' && decodeRequest(snap).ok);
      await peer.send(Buffer.from([0x0a, 0x00]));
      await new Promise<void>((r) => server.once('snapshotSent', () => r()));
      const added = server.addWorkload(
        workloadUid('slow'),
        { name: 'n', namespace: 'ns', serviceAccount: 'sa' },
        netns,
      );
      await assert.rejects(added, { code: 'ZDS_ACK_TIMEOUT' });
      const add = await peer.next();
      assert.ok(add !== 'closed' && decodeRequest(add).ok);
      assert.equal(await peer.next(), 'closed');
      assert.equal(server.connectionCount, 0);
    } finally {
      netns.close();
      server.close();
    }
  });
});
