/**
 * The benchmark's server app, run inside a pod's netns (`ip netns exec <pod> node echo-server.js PORT`).
 * Protocol per connection: the first byte picks the mode.
 *   'E' echo: every byte read is written back (request/response and connection-rate tests).
 *   'S' sink: count bytes until EOF, then reply with the count as 8 bytes and close (bulk throughput).
 */
import { createServer, type Socket } from 'node:net';

const port = Number(process.argv[2] ?? 5000);
const HWM = 1024 * 1024;

function serve(socket: Socket): void {
  socket.setNoDelay(true);
  socket.on('error', () => {});
  socket.once('readable', () => {
    const first = socket.read(1) as Buffer | null;
    if (!first) return;
    if (first[0] === 0x45 /* E */) {
      socket.pipe(socket);
      return;
    }
    let total = 0;
    socket.on('data', (d: Buffer) => {
      total += d.length;
    });
    socket.on('end', () => {
      const reply = Buffer.alloc(8);
      reply.writeBigUInt64BE(BigInt(total));
      socket.end(reply);
    });
  });
}

const server = createServer({ allowHalfOpen: true, highWaterMark: HWM } as never, serve);
server.listen({ port, host: '::', backlog: 1024 }, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
