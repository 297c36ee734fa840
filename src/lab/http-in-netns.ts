/**
 * A one-shot HTTP/1.0 GET to 127.0.0.1:port inside a netns: how the lab checks health endpoints of
 * processes in its nodes, and reads their admin and metrics pages.
 */
import type { Socket } from 'node:net';
import { connected, connectInNetns, type NetnsHandle } from '../sys/index.js';

/**
 * How long one check may take. Bounded because whatever holds the port may accept and never
 * answer (a leftover process): an unbounded check would hang the caller, which polls again anyway.
 */
export const HEALTH_CHECK_TIMEOUT_MS = 3000;

/** The response status, or undefined when nothing answers in time (the process is still starting). */
export async function httpStatusIn(
  netns: NetnsHandle,
  port: number,
  path: string,
  timeoutMs = HEALTH_CHECK_TIMEOUT_MS,
): Promise<number | undefined> {
  return (await httpGetIn(netns, port, path, timeoutMs))?.status;
}

/** Status and body of the response, or undefined when nothing answers in time. */
export async function httpGetIn(
  netns: NetnsHandle,
  port: number,
  path: string,
  timeoutMs = HEALTH_CHECK_TIMEOUT_MS,
): Promise<{ status: number; body: string } | undefined> {
  const socket: Socket = connectInNetns(netns, { host: '127.0.0.1', port });
  socket.setTimeout(timeoutMs, () => socket.destroy());
  try {
    await connected(socket);
  } catch {
    socket.destroy();
    return undefined;
  }
  return new Promise((resolve) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      text += d;
    });
    socket.once('error', () => resolve(undefined));
    socket.once('close', () => {
      const status = Number(/^HTTP\/1\.\d (\d{3})/.exec(text)?.[1]);
      const bodyAt = text.indexOf('\r\n\r\n');
      resolve(status ? { status, body: bodyAt < 0 ? '' : text.slice(bodyAt + 4) } : undefined);
    });
    socket.write(`GET ${path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n`);
  });
}
