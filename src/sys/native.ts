/** Loads the N-API addon built from native/ and describes its surface. Only src/sys/ imports this. */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sysError } from './errors.js';

export interface NativeSocketOptions {
  family?: 4 | 6;
  /** SO_MARK: ztunnel's sockets carry 0x539 so the in-pod rules skip them. */
  mark?: number;
  /** IP_TRANSPARENT (+ IPV6_TRANSPARENT): accept TPROXY traffic, or bind a foreign source address. */
  transparent?: boolean;
  freebind?: boolean;
  reuseAddr?: boolean;
  reusePort?: boolean;
  /** Only for IPv6 sockets; the default is dual-stack, as the seed's `*:15001` listeners are. */
  v6Only?: boolean;
  noDelay?: boolean;
  bindAddress?: string;
  bindPort?: number;
}

export interface NativeAddress {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

export type NativeRecv = { data: Buffer; fds: number[] } | { eof: true } | null;
export type PollWatcher = { readonly __brand: 'PollWatcher' };

export interface NativeAddon {
  tcpSocket(netnsFd: number, options: NativeSocketOptions): number;
  udpSocket(netnsFd: number, options: NativeSocketOptions): number;
  setSocketOptions(fd: number, options: NativeSocketOptions): void;
  getSocketMark(fd: number): number;
  originalDst(fd: number, family: 4 | 6): NativeAddress;
  netnsCheck(netnsFd: number): void;
  seqpacketListen(path: string, backlog: number, mode: number): number;
  seqpacketConnect(path: string): number;
  seqpacketPair(): [number, number];
  seqpacketAccept(fd: number): number;
  seqpacketSend(fd: number, data: Buffer, fds: number[]): number;
  seqpacketRecv(fd: number, maxBytes: number): NativeRecv;
  pollStart(fd: number, events: number, cb: (status: number, events: number) => void): PollWatcher;
  pollUpdate(w: PollWatcher, events: number): void;
  pollStop(w: PollWatcher): void;
  mallocTrim(): boolean;
}

export const POLL_READABLE = 1;
export const POLL_WRITABLE = 2;

let addon: NativeAddon | undefined;

export function native(): NativeAddon {
  if (addon) return addon;
  // dist/src/sys/native.js and src/sys/native.ts are both three levels below the package root.
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const candidates = [join(root, 'native', 'build', 'Release', 'ambit_native.node')];
  const alt = join(
    dirname(fileURLToPath(import.meta.url)),
    '..',
    '..',
    'native',
    'build',
    'Release',
    'ambit_native.node',
  );
  candidates.push(alt);
  const require = createRequire(import.meta.url);
  let lastError: unknown;
  for (const path of candidates) {
    try {
      addon = require(path) as NativeAddon;
      return addon;
    } catch (err) {
      lastError = err;
    }
  }
  throw sysError(
    'ENATIVE',
    `the native addon is not built (run 'npm install' or 'node scripts/build-native.mjs'): ${String(lastError)}`,
  );
}
