/**
 * The node proxy's ZDS sessions: connects to the agent's socket (backoff 10 ms doubling to 15 s), runs
 * each connection (zds/client: hello, requests, responses) and feeds each request to the state manager,
 * answering it once processed, one at a time.
 * Deliberate deviation from upstream: a protocol error NACKs and drops the connection (the agent
 * reconnects us with a fresh snapshot) instead of exiting the process.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { errorCode, errorMessage } from '../../errors.js';
import { logger } from '../../runtime/log.js';
import type { SeqpacketSocket } from '../../sys/index.js';
import { connectToAgent, ZdsClientConnection } from '../../zds/client.js';
import { ack, type Decoded, nack, type WorkloadResponse } from '../../zds/messages.js';
import { closeFds, type RequestPacket } from '../../zds/packet.js';
import { ReconnectBackoff } from './backoff.js';
import { type InPodStateManager, ZDS_NETNS_REFUSED, ZDS_PROTOCOL, ZDS_PROXY_START } from './statemanager.js';

const log = logger('ztunnel::inpod::workloadmanager');

export interface WorkloadManagerOptions {
  /** The agent's socket (INPOD_UDS). */
  uds: string;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** How often pods whose proxy failed to start are retried. Default 5 s. */
  retryIntervalMs?: number;
  /** Waits between connection attempts (tests record the schedule); default: a real timer. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** How a session ended: the hello could not be sent, the peer left, or we dropped it. */
export type SessionEnd =
  | { kind: 'announceError'; error: string }
  | { kind: 'eof'; reachedReady: boolean }
  | { kind: 'dropped'; reason: string; reachedReady: boolean };

export class WorkloadProxyManager {
  readonly state: InPodStateManager;
  #options: Required<Omit<WorkloadManagerOptions, 'sleep'>>;
  #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  #abort = new AbortController();
  #socket: SeqpacketSocket | undefined;
  #loop: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Requests and retries run one after another on this chain. */
  #work: Promise<void> = Promise.resolve();

  constructor(state: InPodStateManager, options: WorkloadManagerOptions) {
    this.state = state;
    this.#options = {
      uds: options.uds,
      backoffInitialMs: options.backoffInitialMs ?? 10,
      backoffMaxMs: options.backoffMaxMs ?? 15_000,
      retryIntervalMs: options.retryIntervalMs ?? 5000,
    };
    this.#sleep = options.sleep ?? ((ms, signal) => sleep(ms, undefined, { signal }).catch(() => {}));
  }

  ready(): boolean {
    return this.state.ready();
  }

  /** Starts the connect loop; it runs until stop(). */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops reconnecting, closes the connection and drains every pod proxy gracefully. */
  async stop(): Promise<void> {
    log.info('workload proxy manager: drain requested');
    this.#abort.abort();
    this.#socket?.close();
    clearTimeout(this.#retryTimer);
    await this.#loop;
    await this.#work;
    await this.state.stopAll('drain');
  }

  async #run(): Promise<void> {
    const backoff = new ReconnectBackoff(this.#options.backoffInitialMs, this.#options.backoffMaxMs);
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      let socket: SeqpacketSocket;
      try {
        socket = connectToAgent(this.#options.uds);
      } catch (err) {
        log.warn(
          `failed to connect to the Istio CNI node agent over ${JSON.stringify(this.#options.uds)}, is the node agent healthy? details: ${errorMessage(err)}`,
        );
        await this.#wait(backoff);
        continue;
      }
      this.#socket = socket;
      const end = await this.runSession(socket);
      this.#socket = undefined;
      if (end.kind !== 'announceError' && end.reachedReady) backoff.reset();
      if (end.kind === 'announceError')
        log.warn('failed to announce to the node agent', { error: end.error });
      if (!signal.aborted) await this.#wait(backoff);
    }
  }

  async #wait(backoff: ReconnectBackoff): Promise<void> {
    const ms = backoff.next();
    log.debug('reconnecting to the node agent', { retry_in_ms: ms });
    await this.#sleep(ms, this.#abort.signal);
  }

  /** Runs one ZDS connection to its end. Public so tests can drive it over a socket pair. */
  runSession(socket: SeqpacketSocket): Promise<SessionEnd> {
    log.info('handling new stream');
    this.#resetRetries();
    this.state.resetConnection();
    let reachedReady = false;
    let dropReason: string | undefined;
    const onReadiness = (ready: boolean) => {
      reachedReady ||= ready;
    };
    this.state.on('readiness', onReadiness);

    let end: (end: SessionEnd) => void = () => {};
    const ended = new Promise<SessionEnd>((resolve) => {
      end = resolve;
    });
    const drop = (reason: string) => {
      dropReason ??= reason;
      log.warn('dropping node agent connection', { reason });
      conn.close();
    };
    const reply = async (response: WorkloadResponse): Promise<boolean> => {
      try {
        await conn.respond(response);
        return true;
      } catch (err) {
        drop(`failed to send ack: ${errorMessage(err)}`);
        return false;
      }
    };
    const handle = async (packet: Decoded<RequestPacket>): Promise<void> => {
      if (!packet.ok) {
        if (conn.closed) return;
        await reply(nack(`failure to read message : ${packet.error.message}`));
        drop(packet.error.message);
        return;
      }
      if (conn.closed) {
        // Queued behind the request that dropped the connection: not for us any more.
        if ('netnsFd' in packet.value) closeFds([packet.value.netnsFd]);
        return;
      }
      try {
        await this.state.process(packet.value);
        await reply(ack());
      } catch (err) {
        const code = errorCode(err);
        if (code === ZDS_PROXY_START) {
          if (await reply(nack(`failure to start proxy : ${errorMessage(err)}`))) this.#scheduleRetry();
        } else if (code === ZDS_NETNS_REFUSED) {
          // Nothing to retry: the same netns stays refused, and the connection is fine.
          await reply(nack(`failure to start proxy : ${errorMessage(err)}`));
        } else if (code === ZDS_PROTOCOL) {
          await reply(nack(`failure to process message : ${errorMessage(err)}`));
          drop(`protocol error: ${errorMessage(err)}`);
        } else {
          await reply(nack(`failure to process message : ${errorMessage(err)}`));
          drop(`unexpected error: ${errorMessage(err)}`);
        }
      }
    };

    const conn = new ZdsClientConnection(socket, {
      request: (packet) => this.#enqueue(() => handle(packet)),
      truncated: () =>
        this.#enqueue(async () => {
          if (conn.closed) return;
          await reply(nack('failure to read message : received truncated message'));
          drop('received truncated message');
        }),
      error: (err) => {
        dropReason ??= errorMessage(err);
      },
      close: () =>
        this.#enqueue(async () => {
          this.state.off('readiness', onReadiness);
          this.#resetRetries();
          this.state.resetConnection();
          if (dropReason === undefined) {
            log.info('process stream ended with eof');
            end({ kind: 'eof', reachedReady });
          } else end({ kind: 'dropped', reason: dropReason, reachedReady });
        }),
    });
    conn.hello().catch((err: Error) => {
      dropReason ??= `announce failed: ${err.message}`;
      conn.close();
      this.state.off('readiness', onReadiness);
      end({ kind: 'announceError', error: err.message });
    });
    return ended;
  }

  #enqueue(task: () => Promise<void>): void {
    this.#work = this.#work
      .then(task)
      .catch((err) => log.error('ZDS request handling failed', { error: errorMessage(err) }));
  }

  #scheduleRetry(): void {
    if (this.#retryTimer || this.#abort.signal.aborted) return;
    log.info('scheduling retry', { uids: this.state.pendingUids().join(',') });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#enqueue(async () => {
        await this.state.retryPending();
        if (this.state.pendingUids().length > 0) this.#scheduleRetry();
      });
    }, this.#options.retryIntervalMs);
  }

  /** Reconnect clears the retry queue: the agent re-sends every pod in its snapshot. */
  #resetRetries(): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }
}
