/**
 * Bad input to the native layer throws typed errors and the process lives on; many create/close
 * cycles leave the fd count where it was.
 */
import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import type { Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { AmbitError } from '../../../src/errors.js';
import { listenInNetns, NetnsHandle, seqpacketPair } from '../../../src/sys/index.js';
import { tcpSocketFd } from '../../../src/sys/socket.js';
import { openFdCount, TestNetns } from '../../helpers/netns.js';

describe('native layer: errors and resource hygiene', () => {
  let pod: TestNetns;
  let netns: NetnsHandle;

  before(() => {
    pod = new TestNetns();
    netns = NetnsHandle.open(pod.path);
  });
  after(() => {
    netns?.close();
    pod?.remove();
  });

  test('a missing netns path is ENOENT with the path in the message', () => {
    assert.throws(
      () => NetnsHandle.open('/var/run/netns/ambit-t-does-not-exist'),
      (err: AmbitError) => err.code === 'ENOENT' && err.message.includes('ambit-t-does-not-exist'),
    );
  });

  test('an fd that is not a network namespace is rejected (EINVAL) and closed', () => {
    const fd = openSync('/proc/self/status', 'r');
    assert.throws(
      () => NetnsHandle.fromFd(fd),
      (err: AmbitError) => err.code === 'EINVAL',
    );
    assert.throws(() => closeSync(fd), /EBADF/, 'fromFd must close the fd it rejected');
  });

  test('a closed handle or closed fd is EBADF', () => {
    const h = NetnsHandle.open(pod.path);
    const fd = h.fd;
    h.close();
    assert.throws(
      () => h.fd,
      (err: AmbitError) => err.code === 'EBADF',
    );
    assert.throws(
      () => tcpSocketFd({ fd } as NetnsHandle, { family: 4 }),
      (err: AmbitError) => err.code === 'EBADF',
    );
  });

  test('unknown options and bad values are typed errors', async () => {
    await assert.rejects(
      async () => listenInNetns(netns, { port: 1, colour: 'blue' } as never),
      (err: AmbitError) => err.code === 'ERR_UNKNOWN_OPTION' && err.message.includes('colour'),
    );
    await assert.rejects(
      async () => listenInNetns(netns, { port: 70000 }),
      (err: AmbitError) => err.code === 'ERR_INVALID_PORT',
    );
    await assert.rejects(
      async () => listenInNetns(netns, { port: 1, host: 'nope' }),
      (err: AmbitError) => err.code === 'ERR_INVALID_IP',
    );
  });

  test('binding a taken port is EADDRINUSE naming bind()', async () => {
    const first = await listenInNetns(netns, { port: 0, host: '0.0.0.0' });
    const port = (first.address() as { port: number }).port;
    try {
      await assert.rejects(
        async () => listenInNetns(netns, { port, host: '0.0.0.0', reuseAddr: false }),
        (err: Error & { code?: string }) => err.code === 'EADDRINUSE' && err.message.startsWith('bind'),
      );
    } finally {
      await new Promise<void>((r) => first.close(() => r()));
    }
  });

  test('10,000 in-netns socket create/close cycles and SEQPACKET messages with fds leave the fd count unchanged', async () => {
    const baseline = openFdCount();
    for (let i = 0; i < 10_000; i++)
      closeSync(tcpSocketFd(netns, { family: i % 2 ? 6 : 4, mark: 0x539, reusePort: true }));
    for (let i = 0; i < 200; i++) {
      const server: Server = await listenInNetns(netns, { port: 0, reusePort: true, transparent: true });
      await new Promise<void>((r) => server.close(() => r()));
    }

    const [a, b] = seqpacketPair();
    let received = 0;
    const all = new Promise<void>((resolve) =>
      b.on('message', (data, fds) => {
        assert.equal(data.readUInt32BE(0), received);
        assert.equal(fds.length, 1);
        for (const fd of fds) closeSync(fd);
        if (++received === 10_000) resolve();
      }),
    );
    const sends: Promise<void>[] = [];
    const buf = Buffer.alloc(4);
    for (let i = 0; i < 10_000; i++) {
      const msg = Buffer.from(buf);
      msg.writeUInt32BE(i, 0);
      sends.push(a.send(msg, [netns.fd]));
    }
    await Promise.all(sends);
    await all;
    a.close();
    b.close();
    await new Promise((r) => setImmediate(r));
    assert.equal(openFdCount(), baseline);
  });
});
