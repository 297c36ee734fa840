/**
 * AF_UNIX SOCK_SEQPACKET sockets with SCM_RIGHTS fd passing (the ZDS transport), event-driven
 * through a libuv poll handle: no blocking calls and no thread per socket.
 *
 * Ownership of fds: fds given to send() stay the caller's; fds that arrive with a message belong to
 * the 'message' listener (they are closed when nobody listens or the message was truncated).
 */
import { EventEmitter } from 'node:events';
import { closeSync, unlinkSync } from 'node:fs';
import { errorCode } from '../errors.js';
import { sysError } from './errors.js';
import { native, POLL_READABLE, POLL_WRITABLE, type PollWatcher } from './native.js';

export const DEFAULT_MAX_MESSAGE = 64 * 1024;
/** Messages read per readiness event before yielding, so one busy peer cannot starve the loop. */
const READ_BATCH = 64;

export interface SeqpacketSocketOptions {
  /** Larger datagrams are reported as truncated (EMSGSIZE) and dropped. */
  maxMessageSize?: number;
}

interface PendingSend {
  data: Buffer;
  fds: number[];
  resolve: () => void;
  reject: (err: Error) => void;
}

export interface SeqpacketSocketEvents {
  message: [data: Buffer, fds: number[]];
  /** A datagram that could not be read whole (EMSGSIZE, ECTRUNC); the socket stays usable. */
  truncated: [err: Error];
  error: [err: Error];
  close: [];
}

export class SeqpacketSocket extends EventEmitter<SeqpacketSocketEvents> {
  #fd: number;
  #watcher: PollWatcher | undefined;
  #queue: PendingSend[] = [];
  #paused = false;
  #closed = false;
  readonly maxMessageSize: number;

  constructor(fd: number, options: SeqpacketSocketOptions = {}) {
    super();
    this.#fd = fd;
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE;
    this.#watcher = native().pollStart(fd, POLL_READABLE, (status, events) => this.#onPoll(status, events));
  }

  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Sends one datagram, with `fds` attached as SCM_RIGHTS. Resolves once the kernel took it. */
  send(data: Uint8Array, fds: number[] = []): Promise<void> {
    if (this.#closed) return Promise.reject(sysError('ERR_SOCKET_CLOSED', 'seqpacket socket is closed'));
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    return new Promise((resolve, reject) => {
      this.#queue.push({ data: buf, fds, resolve, reject });
      if (this.#queue.length === 1) this.#flush();
    });
  }

  pause(): void {
    this.#paused = true;
    this.#updatePoll();
  }

  resume(): void {
    this.#paused = false;
    this.#updatePoll();
  }

  close(): void {
    this.destroy();
  }

  destroy(err?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#watcher) native().pollStop(this.#watcher);
    this.#watcher = undefined;
    try {
      closeSync(this.#fd);
    } catch {}
    this.#fd = -1;
    const pending = this.#queue;
    this.#queue = [];
    for (const p of pending)
      p.reject(err ?? sysError('ERR_SOCKET_CLOSED', 'seqpacket socket closed before send'));
    process.nextTick(() => {
      if (err) this.emit('error', err);
      this.emit('close');
    });
  }

  #updatePoll(): void {
    if (!this.#watcher) return;
    const events = (this.#paused ? 0 : POLL_READABLE) | (this.#queue.length > 0 ? POLL_WRITABLE : 0);
    native().pollUpdate(this.#watcher, events);
  }

  #onPoll(status: number, events: number): void {
    if (this.#closed) return;
    if (status < 0) {
      this.destroy(sysError('EPOLL', `seqpacket poll failed (${status})`));
      return;
    }
    if (events & POLL_WRITABLE) this.#flush();
    if (events & POLL_READABLE && !this.#paused) this.#read();
  }

  #flush(): void {
    while (this.#queue.length > 0 && !this.#closed) {
      const next = this.#queue[0]!;
      let sent: number;
      try {
        sent = native().seqpacketSend(this.#fd, next.data, next.fds);
      } catch (err) {
        this.#queue.shift();
        next.reject(err as Error);
        // A broken pipe means the peer is gone: nothing more will go through.
        const code = errorCode(err);
        if (code === 'EPIPE' || code === 'ECONNRESET' || code === 'ENOTCONN') this.destroy();
        continue;
      }
      if (sent < 0) break; // buffer full: wait for POLL_WRITABLE
      this.#queue.shift();
      next.resolve();
    }
    this.#updatePoll();
  }

  #read(): void {
    for (let i = 0; i < READ_BATCH && !this.#closed && !this.#paused; i++) {
      let r: ReturnType<ReturnType<typeof native>['seqpacketRecv']>;
      try {
        r = native().seqpacketRecv(this.#fd, this.maxMessageSize);
      } catch (err) {
        const code = errorCode(err);
        if (code === 'EMSGSIZE' || code === 'ECTRUNC') {
          if (this.listenerCount('truncated') > 0) this.emit('truncated', err as Error);
          else this.destroy(err as Error);
          continue;
        }
        if (code === 'ECONNRESET') this.destroy();
        else this.destroy(err as Error);
        return;
      }
      if (r === null) return;
      if ('eof' in r) {
        this.destroy();
        return;
      }
      if (this.listenerCount('message') === 0) {
        for (const fd of r.fds) closeSync(fd);
        continue;
      }
      this.emit('message', r.data, r.fds);
    }
  }
}

export interface SeqpacketServerOptions extends SeqpacketSocketOptions {
  /** File mode of the socket, set before listen(). Default 0600. */
  mode?: number;
  backlog?: number;
}

export interface SeqpacketServerEvents {
  connection: [socket: SeqpacketSocket];
  error: [err: Error];
  close: [];
}

export class SeqpacketServer extends EventEmitter<SeqpacketServerEvents> {
  #fd: number;
  #watcher: PollWatcher | undefined;
  readonly path: string;
  readonly #options: SeqpacketSocketOptions;

  private constructor(fd: number, path: string, options: SeqpacketSocketOptions) {
    super();
    this.#fd = fd;
    this.path = path;
    this.#options = options;
    this.#watcher = native().pollStart(fd, POLL_READABLE, (status) => this.#onPoll(status));
  }

  /** Listens at `path`, replacing a stale socket file left by an earlier process. */
  static listen(path: string, options: SeqpacketServerOptions = {}): SeqpacketServer {
    try {
      unlinkSync(path);
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw err;
    }
    const fd = native().seqpacketListen(path, options.backlog ?? 64, options.mode ?? 0o600);
    return new SeqpacketServer(fd, path, { maxMessageSize: options.maxMessageSize });
  }

  #onPoll(status: number): void {
    if (status < 0) {
      this.emit('error', sysError('EPOLL', `seqpacket listener poll failed (${status})`));
      return;
    }
    for (let i = 0; i < READ_BATCH && this.#fd >= 0; i++) {
      let fd: number;
      try {
        fd = native().seqpacketAccept(this.#fd);
      } catch (err) {
        this.emit('error', err as Error);
        return;
      }
      if (fd < 0) return;
      this.emit('connection', new SeqpacketSocket(fd, this.#options));
    }
  }

  close(): void {
    if (this.#fd < 0) return;
    if (this.#watcher) native().pollStop(this.#watcher);
    this.#watcher = undefined;
    closeSync(this.#fd);
    this.#fd = -1;
    try {
      unlinkSync(this.path);
    } catch {}
    process.nextTick(() => this.emit('close'));
  }
}

export function connectSeqpacket(path: string, options: SeqpacketSocketOptions = {}): SeqpacketSocket {
  return new SeqpacketSocket(native().seqpacketConnect(path), options);
}

/** A connected pair (tests, in-process wiring). */
export function seqpacketPair(options: SeqpacketSocketOptions = {}): [SeqpacketSocket, SeqpacketSocket] {
  const [a, b] = native().seqpacketPair();
  return [new SeqpacketSocket(a, options), new SeqpacketSocket(b, options)];
}
