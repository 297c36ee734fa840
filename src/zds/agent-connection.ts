/**
 * One node proxy connected to the agent. Acks are correlated with requests only by order, so this
 * sends strictly one request, waits for its ack, then sends the next. Anything the proxy sends that
 * is not the awaited ack (or the first-datagram hello) is a protocol error and drops the connection.
 */
import { logger } from '../runtime/log.js';
import type { SeqpacketSocket } from '../sys/index.js';
import { ZdsError } from './errors.js';
import { describeRequest, encodeRequest, type WorkloadRequest, type ZdsHello } from './messages.js';
import { closeFds, readHelloPacket, readResponsePacket } from './packet.js';

const log = logger('ambit::zds::server');

interface InFlight {
  resolve: (error: string) => void;
  reject: (err: Error) => void;
}

export interface AgentConnectionOptions {
  helloTimeoutMs: number;
  ackTimeoutMs: number;
}

export class AgentConnection {
  static #nextId = 1;
  readonly id = AgentConnection.#nextId++;
  readonly hello: Promise<ZdsHello>;
  readonly closed: Promise<void>;
  #socket: SeqpacketSocket;
  #options: AgentConnectionOptions;
  #helloSettle: { resolve: (h: ZdsHello) => void; reject: (err: Error) => void } | undefined;
  #helloTimer: NodeJS.Timeout | undefined;
  #inFlight: InFlight | undefined;
  /** Tail of the request queue: each request starts after the previous one settled. */
  #tail: Promise<unknown> = Promise.resolve();
  #closeReason: string | undefined;

  constructor(socket: SeqpacketSocket, options: AgentConnectionOptions) {
    this.#socket = socket;
    this.#options = options;
    this.hello = new Promise((resolve, reject) => {
      this.#helloSettle = { resolve, reject };
    });
    this.hello.catch(() => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    this.#helloTimer = setTimeout(
      () => this.close(`no ZdsHello within ${options.helloTimeoutMs} ms`),
      options.helloTimeoutMs,
    );
    socket.on('message', (data, fds) => this.#onMessage(data, fds));
    socket.on('truncated', (err) => this.close(`truncated datagram: ${err.message}`));
    socket.on('error', (err) => this.close(`socket error: ${err.message}`));
    socket.once('close', () => this.#onClose());
  }

  get isClosed(): boolean {
    return this.#socket.closed;
  }

  /**
   * Sends `req` (with `fds` as SCM_RIGHTS) once every earlier request is acknowledged; resolves to
   * the ack's error text ('' = ACK). Rejects when the connection closes or the ack is late.
   */
  request(req: WorkloadRequest, fds: number[] = []): Promise<string> {
    const run = this.#tail.then(() => this.#send(req, fds));
    this.#tail = run.catch(() => {});
    return run;
  }

  close(reason: string): void {
    if (this.#socket.closed) return;
    this.#closeReason ??= reason;
    log.warn('dropping ztunnel connection', { conn: this.id, reason });
    this.#socket.close();
  }

  #send(req: WorkloadRequest, fds: number[]): Promise<string> {
    if (this.#socket.closed) return Promise.reject(this.#closedError(req));
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#inFlight = undefined;
        reject(
          new ZdsError(
            'ZDS_ACK_TIMEOUT',
            `ztunnel did not acknowledge ${describeRequest(req)} within ${this.#options.ackTimeoutMs} ms`,
            {
              retryable: true,
            },
          ),
        );
        // A late ack would be taken for the next request's, so the connection cannot be reused.
        this.close('ack timeout');
      }, this.#options.ackTimeoutMs);
      this.#inFlight = {
        resolve: (error) => {
          clearTimeout(timer);
          resolve(error);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.#socket.send(encodeRequest(req), fds).catch((err: Error) => {
        const inFlight = this.#inFlight;
        this.#inFlight = undefined;
        inFlight?.reject(
          new ZdsError(
            'ZDS_CONNECTION_CLOSED',
            `cannot send ${describeRequest(req)} to ztunnel: ${err.message}`,
            {
              retryable: true,
              cause: err,
            },
          ),
        );
        this.close(`send failed: ${err.message}`);
      });
    });
  }

  #onMessage(data: Buffer, fds: number[]): void {
    if (this.#helloSettle) {
      const hello = readHelloPacket(data, fds);
      if (!hello.ok) {
        this.close(`bad hello: ${hello.error.message}`);
        return;
      }
      clearTimeout(this.#helloTimer);
      const settle = this.#helloSettle;
      this.#helloSettle = undefined;
      settle.resolve(hello.value);
      return;
    }
    const inFlight = this.#inFlight;
    if (!inFlight) {
      closeFds(fds);
      this.close('unexpected datagram while no request is in flight');
      return;
    }
    const resp = readResponsePacket(data, fds);
    if (!resp.ok) {
      this.close(`bad response: ${resp.error.message}`);
      return;
    }
    this.#inFlight = undefined;
    inFlight.resolve(resp.value.error);
  }

  #closedError(req?: WorkloadRequest): ZdsError {
    const what = req ? ` before ${describeRequest(req)} was acknowledged` : '';
    return new ZdsError(
      'ZDS_CONNECTION_CLOSED',
      `ztunnel connection closed${what} (${this.#closeReason ?? 'peer left'})`,
      {
        retryable: true,
      },
    );
  }

  #onClose(): void {
    clearTimeout(this.#helloTimer);
    if (this.#helloSettle) {
      this.#helloSettle.reject(this.#closedError());
      this.#helloSettle = undefined;
    }
    const inFlight = this.#inFlight;
    this.#inFlight = undefined;
    inFlight?.reject(this.#closedError());
  }
}
