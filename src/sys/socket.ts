/**
 * TCP and UDP sockets created inside another network namespace and handed to Node's `net` and `dgram`
 * modules, plus the socket options and SO_ORIGINAL_DST that Node does not expose.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIP, isIPv4, Server, type ServerOpts, Socket } from 'node:net';
import { unmapIPv4 } from '../net/ip.js';
import { sysError } from './errors.js';
import { type NativeAddress, type NativeSocketOptions, native } from './native.js';
import type { NetnsHandle } from './netns.js';

/** The socket options ambit sets on its own sockets (see NativeSocketOptions). */
export type SocketOptions = Pick<
  NativeSocketOptions,
  'mark' | 'transparent' | 'freebind' | 'reuseAddr' | 'reusePort' | 'v6Only'
>;

export interface ListenInNetnsOptions extends SocketOptions {
  port: number;
  /** Default `::` (all addresses, both families). */
  host?: string;
  /** Default 128, the backlog the seed's `ss -ntlp` shows. */
  backlog?: number;
  server?: ServerOpts;
}

export interface ConnectInNetnsOptions extends SocketOptions {
  host: string;
  port: number;
  /** Source address; with `transparent` it may be an address this netns does not own (spoofing). */
  localAddress?: string;
  localPort?: number;
  noDelay?: boolean;
  allowHalfOpen?: boolean;
  /** Stream buffer size of the Node socket (both directions); larger ones move bulk data in fewer turns. */
  highWaterMark?: number;
}

const SOCKET_OPTION_KEYS = new Set(['mark', 'transparent', 'freebind', 'reuseAddr', 'reusePort', 'v6Only']);
const LISTEN_KEYS = new Set([...SOCKET_OPTION_KEYS, 'port', 'host', 'backlog', 'server']);
const CONNECT_KEYS = new Set([
  ...SOCKET_OPTION_KEYS,
  'host',
  'port',
  'localAddress',
  'localPort',
  'noDelay',
  'allowHalfOpen',
  'highWaterMark',
]);

function checkKeys(what: string, options: object, allowed: Set<string>): void {
  for (const key of Object.keys(options)) {
    if (!allowed.has(key)) {
      throw sysError(
        'ERR_UNKNOWN_OPTION',
        `${what}: unknown option '${key}' (known: ${[...allowed].join(', ')})`,
      );
    }
  }
}

function checkPort(what: string, port: unknown, allowZero: boolean): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65535) {
    throw sysError('ERR_INVALID_PORT', `${what}: invalid port ${String(port)}`);
  }
  return port;
}

function familyOf(what: string, address: string): 4 | 6 {
  const family = isIP(address);
  if (family === 0) throw sysError('ERR_INVALID_IP', `${what}: '${address}' is not an IP address`);
  return family as 4 | 6;
}

function nativeOptions(o: SocketOptions, family: 4 | 6): NativeSocketOptions {
  if (o.mark !== undefined && (!Number.isInteger(o.mark) || o.mark < 0 || o.mark > 0xffffffff)) {
    throw sysError('ERR_INVALID_MARK', `invalid socket mark ${o.mark}`);
  }
  return {
    family,
    mark: o.mark,
    transparent: o.transparent,
    freebind: o.freebind,
    reuseAddr: o.reuseAddr,
    reusePort: o.reusePort,
    v6Only: o.v6Only,
  };
}

/** Creates, configures and binds a TCP socket inside `netns` (null = this process's netns); returns its fd. */
export function tcpSocketFd(netns: NetnsHandle | null, options: NativeSocketOptions): number {
  return native().tcpSocket(netns ? netns.fd : -1, options);
}

/**
 * A listening `net.Server` whose socket lives in `netns`. Bind errors (EADDRINUSE...) throw
 * synchronously with the errno name as `code`.
 */
export function listenInNetns(netns: NetnsHandle | null, options: ListenInNetnsOptions): Promise<Server> {
  checkKeys('listenInNetns', options, LISTEN_KEYS);
  const host = options.host ?? '::';
  const port = checkPort('listenInNetns', options.port, true);
  const family = familyOf('listenInNetns', host);
  const fd = tcpSocketFd(netns, {
    ...nativeOptions(options, family),
    reuseAddr: options.reuseAddr ?? true,
    bindAddress: host,
    bindPort: port,
  });
  const server = new Server(options.server ?? {});
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    // With an fd, net.Server.listen reads the backlog only from its second argument.
    server.listen({ fd }, options.backlog ?? 128, () => {
      server.off('error', onError);
      resolve(server);
    });
  });
}

export interface UdpInNetnsOptions extends Pick<SocketOptions, 'mark' | 'reusePort'> {
  /** Local address; its family is the socket's. */
  host: string;
  /** Default 0 (any free port): a client socket. */
  port?: number;
}

const UDP_KEYS = new Set(['mark', 'reusePort', 'host', 'port']);

/** A bound `dgram.Socket` whose socket lives in `netns`. Bind errors throw with the errno name as `code`. */
export function udpSocketInNetns(netns: NetnsHandle | null, options: UdpInNetnsOptions): Promise<UdpSocket> {
  checkKeys('udpSocketInNetns', options, UDP_KEYS);
  const family = familyOf('udpSocketInNetns', options.host);
  const port = checkPort('udpSocketInNetns', options.port ?? 0, true);
  const fd = native().udpSocket(netns ? netns.fd : -1, {
    ...nativeOptions(options, family),
    reuseAddr: true,
    bindAddress: options.host,
    bindPort: port,
  });
  const socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    socket.once('error', onError);
    socket.bind({ fd }, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/**
 * A client `net.Socket` whose socket lives in `netns`, connecting at once (the returned socket
 * emits 'connect' or 'error' like any `net.connect` socket).
 */
export function connectInNetns(netns: NetnsHandle | null, options: ConnectInNetnsOptions): Socket {
  checkKeys('connectInNetns', options, CONNECT_KEYS);
  const port = checkPort('connectInNetns', options.port, false);
  const family = familyOf('connectInNetns', options.host);
  let localAddress = options.localAddress;
  if (localAddress !== undefined) {
    // A dual-stack peer reports IPv4 clients as ::ffff:a.b.c.d; bind those as plain IPv4.
    if (family === 4 && localAddress.startsWith('::ffff:') && isIPv4(localAddress.slice(7))) {
      localAddress = localAddress.slice(7);
    }
    if (familyOf('connectInNetns', localAddress) !== family) {
      throw sysError(
        'ERR_INVALID_IP',
        `connectInNetns: source ${localAddress} and destination ${options.host} differ in family`,
      );
    }
  }
  const fd = tcpSocketFd(netns, {
    ...nativeOptions(options, family),
    noDelay: options.noDelay ?? true,
    bindAddress: localAddress ?? (options.localPort ? (family === 4 ? '0.0.0.0' : '::') : undefined),
    bindPort: options.localPort,
  });
  // manualStart: do not start reading an unconnected fd (it would report EOF); connect() starts it.
  const socket = new Socket({
    fd,
    allowHalfOpen: options.allowHalfOpen ?? false,
    manualStart: true,
  } as never);
  socket.connect({ host: options.host, port });
  return socket;
}

/** Resolves once `socket` (from connectInNetns) is connected. */
export function connected(socket: Socket): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/** The kernel fd behind a Node socket (Unix only). */
export function socketFd(socket: Socket | Server): number {
  const handle = (socket as unknown as { _handle?: { fd?: number } })._handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw sysError('EBADF', 'socket has no open file descriptor');
  return fd;
}

/**
 * The destination the client dialled before REDIRECT rewrote it (conntrack's SO_ORIGINAL_DST),
 * for IPv4 (also on a dual-stack socket) and IPv6.
 */
export function originalDst(socket: Socket): NativeAddress {
  const local = socket.localAddress;
  if (!local) throw sysError('ENOTCONN', 'originalDst: socket is not connected');
  const v4 = isIPv4(unmapIPv4(local));
  return native().originalDst(socketFd(socket), v4 ? 4 : 6);
}

export function setSocketOptions(socket: Socket | Server, options: SocketOptions): void {
  checkKeys('setSocketOptions', options, SOCKET_OPTION_KEYS);
  native().setSocketOptions(socketFd(socket), nativeOptions(options, 4));
}

export function socketMark(socket: Socket | Server): number {
  return native().getSocketMark(socketFd(socket));
}

/**
 * Ends a TCP connection with a reset (RST), as a broken connection ends, so the peer never takes a cut
 * connection for a complete one. Where a reset is impossible it closes instead: while still connecting,
 * after a FIN went out (libuv refuses a reset after shutdown; unread data still makes the close a reset),
 * or on a handle that is not TCP. The socket is being discarded, so its late errors are swallowed.
 */
export function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  socket.on('error', () => {});
  if (socket.connecting || socket.writableEnded) {
    socket.destroy();
    return;
  }
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}
