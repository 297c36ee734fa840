/** Small helpers the data-path tests share: hashing payloads, reading a socket to its end, bounded polling. */
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import { CONDITION_DEADLINE_MS } from './wait.js';

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Everything the socket delivers until the peer ends its side. */
export function readAll(socket: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
  });
}

/** Polls `pred` every 10 ms; rejects naming `what` after `ms`. */
export function waitFor(pred: () => boolean, what: string, ms = CONDITION_DEADLINE_MS): Promise<void> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      if (pred()) resolve();
      else if (Date.now() - start > ms) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 10);
    };
    tick();
  });
}
