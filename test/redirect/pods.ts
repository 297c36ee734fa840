/**
 * Root-test fixture: two "pods" joined by a veth (pod A gets the rules) and test listeners that
 * stand in for the proxy inside pod A. Everything it makes is undone by `close()`.
 */
import type { Server, Socket } from 'node:net';
import {
  type ConnectInNetnsOptions,
  connected,
  connectInNetns,
  listenInNetns,
  NetnsHandle,
} from '../../src/sys/index.js';
import { run, VethPair } from '../helpers/netns.js';

export const PROXY_LISTEN = { transparent: true, mark: 0x539 } as const;

export class PodPair {
  readonly pair = new VethPair();
  readonly a: NetnsHandle;
  readonly b: NetnsHandle;
  readonly #servers: Server[] = [];
  readonly #sockets: Socket[] = [];

  constructor() {
    try {
      this.a = NetnsHandle.open(this.pair.a.path);
      this.b = NetnsHandle.open(this.pair.b.path);
    } catch (err) {
      this.pair.remove();
      throw err;
    }
  }

  get addrA(): string {
    return this.pair.addrA;
  }

  get addrB(): string {
    return this.pair.addrB;
  }

  /** The veth end inside a namespace (the only link besides lo). */
  iface(side: 'a' | 'b'): string {
    const ns = side === 'a' ? this.pair.a : this.pair.b;
    const out = ns.exec('ip', ['-o', 'link', 'show']);
    const name = /^\d+: (ambit[^@:]+)/m.exec(out)?.[1];
    if (!name) throw new Error(`no veth in ${ns.name}`);
    return name;
  }

  async listen(side: 'a' | 'b', port: number, proxy = false, host = '::'): Promise<Server> {
    const server = await listenInNetns(side === 'a' ? this.a : this.b, {
      port,
      host,
      ...(proxy ? PROXY_LISTEN : {}),
    });
    server.on('connection', (s) => {
      this.#sockets.push(s);
      s.on('error', () => {});
    });
    this.#servers.push(server);
    return server;
  }

  /** Resolves with the next connection `server` accepts. Call before dialling. */
  nextConnection(server: Server): Promise<Socket> {
    return new Promise((resolve) => server.once('connection', resolve));
  }

  async dial(side: 'a' | 'b', options: ConnectInNetnsOptions): Promise<Socket> {
    const socket = connectInNetns(side === 'a' ? this.a : this.b, options);
    this.#sockets.push(socket);
    return connected(socket);
  }

  /** Sends a line from `from` and resolves with what arrives at `to`. */
  exchange(from: Socket, to: Socket, text = 'ping\n'): Promise<string> {
    return new Promise((resolve) => {
      to.once('data', (d) => resolve(d.toString()));
      from.write(text);
    });
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await Promise.all(this.#servers.map((s) => new Promise((r) => s.close(r))));
    this.a.close();
    this.b.close();
    this.pair.remove();
  }
}

/** `iptables-save` reduced to what the seed's acceptance compares: tables, chains, rules. */
export function normalizeSave(text: string, tables: readonly string[] = ['mangle', 'nat']): string {
  const blocks = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      current = [];
      blocks.set(line.slice(1), current);
    } else if (current && line.startsWith(':')) current.push(line.replace(/\[\d+:\d+\]$/, '[0:0]'));
    else if (current && (line.startsWith('-A ') || line === 'COMMIT')) current.push(line);
  }
  return tables.map((t) => [`*${t}`, ...(blocks.get(t) ?? ['(absent)'])].join('\n')).join('\n');
}

export function ipRules(ns: string): string {
  return run('ip', ['netns', 'exec', ns, 'ip', 'rule', 'show']);
}
