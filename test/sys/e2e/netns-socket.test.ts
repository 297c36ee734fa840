/**
 * The native addon on the real kernel: sockets created inside another network namespace,
 * SO_MARK against a REDIRECT rule, SO_ORIGINAL_DST for IPv4 and IPv6.
 */
import assert from 'node:assert/strict';
import type { Server, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  connected,
  connectInNetns,
  listenInNetns,
  NetnsHandle,
  originalDst,
  socketMark,
} from '../../../src/sys/index.js';
import { run, TestNetns, uniqueSubnet } from '../../helpers/netns.js';
import { within } from '../../helpers/wait.js';

function acceptOne(server: Server): Promise<Socket> {
  return new Promise((resolve) => server.once('connection', resolve));
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('sockets inside a pod network namespace', () => {
  let pod: TestNetns;
  let netns: NetnsHandle;
  const subnet = uniqueSubnet();
  const v6 = `fd00:a5b1:${subnet.prefix.split('.').slice(1).map(Number).join(':')}::`;

  before(() => {
    pod = new TestNetns();
    netns = NetnsHandle.open(pod.path);
    // A veth pair inside the pod gives it routes to a "remote" /24 and /64 whose traffic never leaves the netns.
    pod.exec('ip', ['link', 'add', 'ambitdum0', 'type', 'veth', 'peer', 'name', 'ambitdum1']);
    pod.exec('ip', ['link', 'set', 'ambitdum1', 'up']);
    pod.exec('ip', ['addr', 'add', `${subnet.host(1)}/24`, 'dev', 'ambitdum0']);
    pod.exec('ip', ['addr', 'add', `${v6}1/64`, 'dev', 'ambitdum0', 'nodad']);
    pod.exec('ip', ['link', 'set', 'ambitdum0', 'up']);
  });
  after(() => {
    netns?.close();
    pod?.remove();
  });

  test('a listener made in the pod netns is listed inside the pod and not in this netns', async () => {
    const server = await listenInNetns(netns, { port: 0, reusePort: true, mark: 0x539 });
    try {
      const { port } = server.address() as { port: number };
      const inPod = pod.exec('ss', ['-Hntl', `sport = :${port}`]);
      assert.match(inPod, new RegExp(`\\*:${port}\\b`), `ss -ntl in the pod: ${inPod}`);
      const here = run('ss', ['-Hntl', `sport = :${port}`]);
      assert.doesNotMatch(
        here,
        new RegExp(`:${port}\\b`),
        `the port must not be open in the caller's netns: ${here}`,
      );
    } finally {
      await close(server);
    }
  });

  test('mark 0x539 skips a REDIRECT rule, an unmarked socket is redirected and sees SO_ORIGINAL_DST', async () => {
    const capture = await listenInNetns(netns, { port: 0, host: '0.0.0.0' });
    const target = await listenInNetns(netns, { port: 0, host: '0.0.0.0' });
    const capturePort = (capture.address() as { port: number }).port;
    const targetPort = (target.address() as { port: number }).port;
    const rule = [
      '-t',
      'nat',
      '-A',
      'OUTPUT',
      '-p',
      'tcp',
      '-m',
      'mark',
      '!',
      '--mark',
      '0x539/0xfff',
      '-j',
      'REDIRECT',
      '--to-ports',
      String(capturePort),
    ];
    pod.exec('iptables', rule);
    try {
      const dialled = subnet.host(1);
      // Unmarked: lands on the capture listener, which recovers the dialled address.
      const captured = acceptOne(capture);
      const plain = await connected(connectInNetns(netns, { host: dialled, port: targetPort }));
      const accepted = await captured;
      assert.deepEqual(originalDst(accepted), { address: dialled, port: targetPort, family: 'IPv4' });
      assert.equal(accepted.localPort, capturePort);
      plain.destroy();
      accepted.destroy();

      // Marked 0x539: bypasses the rule and reaches the real target.
      const direct = acceptOne(target);
      const marked = await connected(connectInNetns(netns, { host: dialled, port: targetPort, mark: 0x539 }));
      assert.equal(socketMark(marked), 0x539);
      const reached = await direct;
      assert.equal(reached.localPort, targetPort);
      marked.destroy();
      reached.destroy();
    } finally {
      pod.exec('iptables', ['-t', 'nat', '-F', 'OUTPUT']);
      await close(capture);
      await close(target);
    }
  });

  test('SO_ORIGINAL_DST for IPv6 and for IPv4 on a dual-stack listener', async () => {
    const capture = await listenInNetns(netns, { port: 0, host: '::' });
    const capturePort = (capture.address() as { port: number }).port;
    const redirect = [
      '-t',
      'nat',
      '-A',
      'OUTPUT',
      '-p',
      'tcp',
      '--dport',
      '8080',
      '-j',
      'REDIRECT',
      '--to-ports',
      String(capturePort),
    ];
    pod.exec('iptables', redirect);
    pod.exec('ip6tables', redirect);
    try {
      // Bounded, with the pod's nat counters and sockets on failure: this once hung to the file timeout in CI.
      const state = () =>
        `\n${pod.exec('iptables-save', ['-c', '-t', 'nat'])}\n${pod.exec('ip6tables-save', ['-c', '-t', 'nat'])}\n${pod.exec('ss', ['-tan'])}`;
      for (const dialled of [`${v6}2`, subnet.host(2)]) {
        const captured = acceptOne(capture);
        const client = await within(
          connected(connectInNetns(netns, { host: dialled, port: 8080 })),
          `the connection to ${dialled}:8080`,
          state,
        );
        const accepted = await within(
          captured,
          `the redirected connection to ${dialled} at the capture`,
          state,
        );
        const dst = originalDst(accepted);
        assert.equal(dst.address, dialled);
        assert.equal(dst.port, 8080);
        client.destroy();
        accepted.destroy();
      }
    } finally {
      pod.exec('iptables', ['-t', 'nat', '-F', 'OUTPUT']);
      pod.exec('ip6tables', ['-t', 'nat', '-F', 'OUTPUT']);
      await within(close(capture), 'the capture listener to close (every accepted connection gone)');
    }
  });

  test('bytes flow both ways through an in-netns listener and client', async () => {
    const server = await listenInNetns(netns, { port: 0 });
    server.on('connection', (s) => s.pipe(s));
    try {
      const port = (server.address() as { port: number }).port;
      const client = await connected(connectInNetns(netns, { host: '::1', port }));
      const payload = Buffer.alloc(256 * 1024, 7);
      const echoed: Buffer[] = [];
      let got = 0;
      const done = new Promise<void>((resolve) =>
        client.on('data', (d: Buffer) => {
          echoed.push(d);
          got += d.length;
          if (got >= payload.length) resolve();
        }),
      );
      client.write(payload);
      await done;
      assert.deepEqual(Buffer.concat(echoed), payload);
      client.destroy();
    } finally {
      await close(server);
    }
  });
});
