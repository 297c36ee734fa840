/**
 * SEQPACKET between two real processes: a netns fd sent by a child arrives here and names the
 * same namespace; oversized datagrams are reported as truncated, not half-read.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SeqpacketServer, type SeqpacketSocket, seqpacketPair } from '../../../src/sys/index.js';
import { TestNetns } from '../../helpers/netns.js';

const fixture = fileURLToPath(new URL('./fixtures/send-netns-fd.js', import.meta.url));

describe('SEQPACKET with SCM_RIGHTS', () => {
  let pod: TestNetns;
  let dir: string;

  before(() => {
    pod = new TestNetns();
    dir = mkdtempSync(join(tmpdir(), 'ambit-t-'));
  });
  after(() => {
    pod?.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a netns fd sent by another process refers to the same namespace (same inode)', async () => {
    const path = join(dir, 'zds.sock');
    const server = SeqpacketServer.listen(path, { mode: 0o600 });
    try {
      assert.equal(statSync(path).mode & 0o777, 0o600);
      const conn = new Promise<SeqpacketSocket>((resolve) => server.once('connection', resolve));
      const child = spawn(process.execPath, [fixture, path, pod.path], {
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      const sock = await conn;
      const [data, fds] = await new Promise<[Buffer, number[]]>((resolve) =>
        sock.once('message', (d, f) => resolve([d, f])),
      );
      assert.equal(fds.length, 1);
      const st = fstatSync(fds[0]!, { bigint: true });
      const expected = statSync(pod.path, { bigint: true });
      assert.equal(st.ino, expected.ino);
      assert.equal(data.toString(), `${expected.dev}:${expected.ino}`);
      closeSync(fds[0]!);
      await sock.send(Buffer.from([1]));
      assert.equal(await exited, 0);
      sock.close();
    } finally {
      server.close();
    }
  });

  test('a datagram larger than the receive buffer is reported as truncated and the next one arrives whole', async () => {
    const [a, b] = seqpacketPair({ maxMessageSize: 1024 });
    try {
      const truncated = new Promise<Error & { code?: string }>((resolve) => b.once('truncated', resolve));
      const next = new Promise<Buffer>((resolve) => b.once('message', (d) => resolve(d)));
      await a.send(Buffer.alloc(4096, 1));
      await a.send(Buffer.from('whole'));
      const err = await truncated;
      assert.equal(err.code, 'EMSGSIZE');
      assert.equal((await next).toString(), 'whole');
    } finally {
      a.close();
      b.close();
    }
  });

  test('a truncated datagram with no truncated-listener closes the socket with the error', async () => {
    const [a, b] = seqpacketPair({ maxMessageSize: 16 });
    const failed = new Promise<Error & { code?: string }>((resolve) => b.once('error', resolve));
    const closed = new Promise<void>((resolve) => b.once('close', resolve));
    await a.send(Buffer.alloc(64));
    assert.equal((await failed).code, 'EMSGSIZE');
    await closed;
    a.close();
  });

  test('the peer closing is seen as close, and a send after it fails with a code', async () => {
    const [a, b] = seqpacketPair();
    const closed = new Promise<void>((resolve) => b.once('close', resolve));
    a.close();
    await closed;
    await assert.rejects(
      b.send(Buffer.from('x')),
      (err: Error & { code?: string }) => err.code === 'ERR_SOCKET_CLOSED',
    );
  });
});
