/**
 * Forwards a query the proxy cannot answer to the upstream resolvers, from inside the pod's netns with
 * the proxy's mark (so the pod's rules let it out instead of capturing it again, and the raw table puts
 * it in its own conntrack zone). The query's bytes go as the pod sent them; the answer comes back as the
 * resolver wrote it, truncation flag included, so a truncated UDP answer makes the pod retry over TCP.
 */
import type { Socket as UdpSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { unmapIPv4 } from '../../net/ip.js';
import type { PodSockets } from '../proxy/pod-sockets.js';
import { readTcpMessage, writeTcpMessage } from './tcp-framing.js';

export const DNS_UPSTREAM_PORT = 53;
/** Per upstream server and try (hickory's default, which ztunnel keeps). */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 5000;

export interface Upstream {
  host: string;
  port: number;
}

export interface ForwarderOptions {
  upstreams: readonly Upstream[];
  timeoutMs?: number;
}

/** ID of a DNS message (its first two bytes). */
export function messageId(message: Buffer): number {
  return message.readUInt16BE(0);
}

export class Forwarder {
  readonly upstreams: readonly Upstream[];
  readonly timeoutMs: number;

  constructor(options: ForwarderOptions) {
    this.upstreams = options.upstreams;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
  }

  /** The first answer any upstream gives, servers tried in order; throws when none answers. */
  async forward(sockets: PodSockets, query: Buffer, transport: 'udp' | 'tcp'): Promise<Buffer> {
    let lastError: unknown = new Error('no upstream resolver configured');
    for (const upstream of this.upstreams) {
      try {
        return transport === 'udp'
          ? await this.#udp(sockets, upstream, query)
          : await this.#tcp(sockets, upstream, query);
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError;
  }

  /** One socket per query: a fresh random source port, and only the asked server's answer is taken. */
  async #udp(sockets: PodSockets, upstream: Upstream, query: Buffer): Promise<Buffer> {
    const socket: UdpSocket = await sockets.udp(isIPv6(upstream.host) ? '::' : '0.0.0.0', 0);
    const id = messageId(query);
    try {
      return await new Promise<Buffer>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no answer from ${upstream.host}:${upstream.port} in ${this.timeoutMs} ms`)),
          this.timeoutMs,
        );
        socket.on('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
        socket.on('message', (message, from) => {
          if (from.port !== upstream.port || message.length < 12 || messageId(message) !== id) return;
          if (unmapIPv4(from.address) !== upstream.host) return;
          clearTimeout(timer);
          resolve(message);
        });
        socket.send(query, upstream.port, upstream.host);
      });
    } finally {
      socket.close();
    }
  }

  async #tcp(sockets: PodSockets, upstream: Upstream, query: Buffer): Promise<Buffer> {
    const socket = sockets.connect({ host: upstream.host, port: upstream.port });
    socket.setTimeout(this.timeoutMs, () =>
      socket.destroy(new Error(`no answer from ${upstream.host}:${upstream.port} in ${this.timeoutMs} ms`)),
    );
    try {
      writeTcpMessage(socket, query);
      const answer = await readTcpMessage(socket);
      if (!answer) throw new Error(`${upstream.host}:${upstream.port} closed without an answer`);
      return answer;
    } finally {
      socket.destroy();
    }
  }
}
