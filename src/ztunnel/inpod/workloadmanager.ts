/**
 * The node proxy's end of ZDS: connects to the agent's socket (backoff 10 ms doubling to 15 s),
 * announces itself, then feeds each request to the state manager and answers it, one at a time.
 * Deliberate deviation from upstream: a protocol error NACKs and drops the connection (the agent
 * reconnects us with a fresh snapshot) instead of exiting the process.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { errorCode, errorMessage } from '../../errors.js';
import { logger } from '../../runtime/log.js';
import { connectSeqpacket, type SeqpacketSocket } from '../../sys/index.js';
import { ack, encodeHello, encodeResponse, nack, ZDS_VERSION_V1 } from '../../zds/messages.js';
import { closeFds, readRequestPacket, ZDS_MAX_MESSAGE } from '../../zds/packet.js';
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
        socket = connectSeqpacket(this.#options.uds, { maxMessageSize: ZDS_MAX_MESSAGE });
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

    const drop = (reason: string) => {
      dropReason ??= reason;
      log.warn('dropping node agent connection', { reason });
      socket.close();
    };
    const reply = async (response: ReturnType<typeof ack>): Promise<boolean> => {
      try {
        await socket.send(encodeResponse(response));
        return true;
      } catch (err) {
        drop(`failed to send ack: ${errorMessage(err)}`);
        return false;
      }
    };
    const handle = async (data: Buffer, fds: number[]): Promise<void> => {
      const packet = readRequestPacket(data, fds);
      if (!packet.ok) {
        if (socket.closed) return;
        await reply(nack(`failure to read message : ${packet.error.message}`));
        drop(packet.error.message);
        return;
      }
      if (socket.closed) {
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

    return new Promise<SessionEnd>((resolve) => {
      socket.on('message', (data, fds) => {
        this.#enqueue(() => handle(data, fds));
      });
      socket.on('truncated', () => {
        this.#enqueue(async () => {
          if (socket.closed) return;
          await reply(nack('failure to read message : received truncated message'));
          drop('received truncated message');
        });
      });
      socket.on('error', (err) => {
        dropReason ??= errorMessage(err);
      });
      socket.once('close', () => {
        this.#enqueue(async () => {
          this.state.off('readiness', onReadiness);
          this.#resetRetries();
          this.state.resetConnection();
          if (dropReason === undefined) {
            log.info('process stream ended with eof');
            resolve({ kind: 'eof', reachedReady });
          } else resolve({ kind: 'dropped', reason: dropReason, reachedReady });
        });
      });
      socket.send(encodeHello({ version: ZDS_VERSION_V1 })).catch((err: Error) => {
        dropReason ??= `announce failed: ${err.message}`;
        socket.close();
        this.state.off('readiness', onReadiness);
        resolve({ kind: 'announceError', error: err.message });
      });
    });
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
