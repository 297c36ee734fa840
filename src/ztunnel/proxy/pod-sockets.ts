/**
 * One pod's sockets (ztunnel's InPodSocketFactory): every listener and every outgoing connection is made
 * inside the pod's netns and carries the packet mark, so the pod's rules let it out; each socket is
 * tracked until it closes, so stopping the pod's proxy can drain or cut what is still open.
 */
import type { Socket as UdpSocket } from 'node:dgram';
import type { Server, Socket } from 'node:net';
import {
  connectInNetns,
  listenInNetns,
  type NetnsHandle,
  resetSocket,
  udpSocketInNetns,
} from '../../sys/index.js';
import type { StopMode } from '../inpod/proxy.js';

/** Stream buffer of proxied sockets (both directions): bulk data moves in fewer turns. */
export const SOCKET_HIGH_WATER_MARK = 1024 * 1024;

/**
 * The listen backlog of every pod listener. Istio's ztunnel listens with 128 and accepts on a multi-threaded
 * runtime in microseconds. This proxy accepts on one JavaScript thread that also carries every connection's
 * bytes, so a burst overflowed 128: 1,000 app connections at once from one pod, 698-723 got through; the
 * kernel fell back to SYN cookies, dropped the handshakes' last ACKs and answered the clients' data with
 * RST. On 15008 a flood of idle connections overflowed it the same way, so that new HBONE connections from
 * real peers were dropped by the kernel before the proxy could choose whom to cut. 4096 is Linux's default
 * net.core.somaxconn; the kernel caps it at the pod's own somaxconn, so the proxy queues as many
 * connections as the pod's app itself could.
 */
const LISTEN_BACKLOG = 4096;

export interface ListenSpec {
  host: string;
  port: number;
  /** IP_TRANSPARENT, so TPROXY'd connections to any address are accepted. */
  transparent: boolean;
}

export interface ConnectTarget {
  host: string;
  port: number;
}

export interface ConnectOptions {
  /** Spoof this source address (IP_TRANSPARENT + IP_FREEBIND + bind), so the app sees the real client. */
  spoofSource?: string;
  /** A socket the proxy copies bytes through: half-open allowed and a large buffer. */
  proxied?: boolean;
}

export interface PodSockets {
  /** Binds a listener in the pod (marked, SO_REUSEPORT when the proxy hands over ports). */
  listen(spec: ListenSpec): Promise<Server>;
  /** A marked UDP socket in the pod bound to host:port (0: any free port); its owner closes it. */
  udp(host: string, port: number): Promise<UdpSocket>;
  /** Starts a connection from the pod, tracked from the start; throws when the socket cannot be made. */
  connect(target: ConnectTarget, options?: ConnectOptions): Socket;
  /** Registers a socket (an accepted one) to be drained or cut with the pod's; it unregisters on close. */
  track(socket: Socket): void;
  /** How many tracked sockets are open. */
  readonly openCount: number;
  /**
   * 'drain' waits up to `deadlineMs` for the tracked sockets to close; then whatever is left is reset: a
   * FIN would tell each app its connection ended complete.
   */
  closeAll(mode: StopMode, deadlineMs: number): Promise<void>;
}

export interface InPodSocketsOptions {
  /** SO_MARK of every socket (PACKET_MARK, 1337). */
  mark: number;
  /** SO_REUSEPORT on the listeners (INPOD_PORT_REUSE). */
  portReuse: boolean;
}

export class InPodSockets implements PodSockets {
  readonly #open = new Set<Socket>();

  constructor(
    readonly netns: NetnsHandle,
    readonly options: InPodSocketsOptions,
  ) {}

  listen(spec: ListenSpec): Promise<Server> {
    return listenInNetns(this.netns, {
      port: spec.port,
      host: spec.host,
      mark: this.options.mark,
      reusePort: this.options.portReuse,
      transparent: spec.transparent,
      backlog: LISTEN_BACKLOG,
      server: { allowHalfOpen: true, highWaterMark: SOCKET_HIGH_WATER_MARK } as never,
    });
  }

  udp(host: string, port: number): Promise<UdpSocket> {
    return udpSocketInNetns(this.netns, {
      host,
      port,
      mark: this.options.mark,
      ...(port === 0 ? {} : { reusePort: this.options.portReuse }),
    });
  }

  connect(target: ConnectTarget, options: ConnectOptions = {}): Socket {
    const socket = connectInNetns(this.netns, {
      host: target.host,
      port: target.port,
      mark: this.options.mark,
      ...(options.proxied ? { allowHalfOpen: true, highWaterMark: SOCKET_HIGH_WATER_MARK } : {}),
      ...(options.spoofSource
        ? { localAddress: options.spoofSource, transparent: true, freebind: true }
        : {}),
    });
    this.track(socket);
    return socket;
  }

  track(socket: Socket): void {
    this.#open.add(socket);
    socket.once('close', () => this.#open.delete(socket));
  }

  get openCount(): number {
    return this.#open.size;
  }

  async closeAll(mode: StopMode, deadlineMs: number): Promise<void> {
    if (mode === 'drain' && this.#open.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadlineMs);
        timer.unref();
        const check = () => {
          if (this.#open.size === 0) {
            clearTimeout(timer);
            resolve();
          }
        };
        for (const s of this.#open) s.once('close', () => setImmediate(check));
      });
    }
    for (const socket of this.#open) resetSocket(socket);
    this.#open.clear();
  }
}
