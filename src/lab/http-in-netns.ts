/** A one-shot HTTP/1.0 GET to 127.0.0.1:port inside a netns: how the lab checks health endpoints of processes in its nodes. */
import type { Socket } from 'node:net';
import { connected, connectInNetns, type NetnsHandle } from '../sys/index.js';

/** The response status, or undefined when nothing answers (the process is still starting). */
export async function httpStatusIn(
  netns: NetnsHandle,
  port: number,
  path: string,
): Promise<number | undefined> {
  let socket: Socket;
  try {
    socket = await connected(connectInNetns(netns, { host: '127.0.0.1', port }));
  } catch {
    return undefined;
  }
  return new Promise((resolve) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      text += d;
    });
    socket.once('error', () => resolve(undefined));
    socket.once('close', () => resolve(Number(/^HTTP\/1\.\d (\d{3})/.exec(text)?.[1]) || undefined));
    socket.write(`GET ${path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n`);
  });
}
