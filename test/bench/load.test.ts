/**
 * The benchmark's load generators against a server that breaks its connections: a measurement whose
 * connection closes before its bytes came back fails with what it got, instead of waiting forever (a
 * relay that dropped its tunnel once hung the whole benchmark until its timeout).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { bulkThroughput, connectionRate, requestResponse, type Target } from '../../bench/load.js';
import { NetnsHandle } from '../../src/sys/index.js';

/** Reads the mode byte and `keep` more bytes (or all there is), answers `answer` bytes, then closes. */
function breakingServer(keep: number, answer: number): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    let seen = 0;
    let answered = false;
    const answerOnce = () => {
      if (answered) return;
      answered = true;
      socket.end(Buffer.alloc(answer, 0x7a));
    };
    socket.on('error', () => {});
    socket.on('data', (d) => {
      seen += d.length;
      if (seen >= 1 + keep) answerOnce();
    });
    socket.on('end', answerOnce);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('bench load generators on a connection that breaks', () => {
  const netns = NetnsHandle.open('/proc/self/ns/net');
  const servers: Server[] = [];
  let target: (server: Server) => Target;

  before(() => {
    target = (server) => {
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('no TCP address');
      return { netns, host: '127.0.0.1', port: address.port };
    };
  });

  after(() => {
    for (const s of servers) s.close();
    netns.close();
  });

  test('request/response: 100 of 1024 bytes back, then close', async () => {
    const server = await breakingServer(1024, 100);
    servers.push(server);
    await assert.rejects(requestResponse(target(server), 1024, 3), /closed after 100 of 1024 bytes/);
  });

  test('new connections: nothing back, then close', async () => {
    const server = await breakingServer(1024, 0);
    servers.push(server);
    await assert.rejects(connectionRate(target(server), 1024, 3), /closed after 0 of 1024 bytes/);
  });

  test('bulk: the count never comes', async () => {
    const server = await breakingServer(Number.MAX_SAFE_INTEGER, 3);
    servers.push(server);
    await assert.rejects(bulkThroughput(target(server), 64 * 1024), /closed after 3 of 8 bytes/);
  });
});
