/**
 * The node agent's end of ZDS: a SOCK_SEQPACKET listener node proxies connect to. Each new proxy
 * gets the snapshot (Add + netns fd per pod whose netns is known, Keep for the others, then
 * SnapshotSent); afterwards new pods go to the newest proxy only and deletions to every proxy, so
 * a rolling proxy upgrade hands over without a gap.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { errorMessage } from '../errors.js';
import { ZDS_SOCKET_PATH } from '../node/contract.js';
import { logger } from '../runtime/log.js';
import { Gauge, Registry } from '../runtime/metrics.js';
import { NetnsHandle, type NetnsRef, SeqpacketServer, type SeqpacketSocket } from '../sys/index.js';
import { AgentConnection } from './agent-connection.js';
import { ZdsError } from './errors.js';
import { type WorkloadInfo, type WorkloadUid, ZDS_VERSION_V1 } from './messages.js';
import { ZDS_MAX_MESSAGE } from './packet.js';

const log = logger('ambit::zds::server');

const CONNECTED_GAUGE = 'ztunnel_connected';

export interface SnapshotPod {
  uid: WorkloadUid;
  info: WorkloadInfo;
  /** null when the agent lost the pod's netns (after its own restart): the proxy is told to Keep it. */
  netns: NetnsRef | null;
}

/** Where the snapshot comes from: the node agent's pod cache (enrolled, non-terminal pods). */
export interface ZdsPodSource {
  snapshot(): Promise<readonly SnapshotPod[]> | readonly SnapshotPod[];
}

export interface ZdsServerOptions {
  path?: string;
  pods: ZdsPodSource;
  /** The gauge `ztunnel_connected` is registered here; default: a private registry. */
  registry?: Registry;
  /** File mode of the socket. Default 0600: only the proxy (same user) may connect. */
  mode?: number;
  helloTimeoutMs?: number;
  ackTimeoutMs?: number;
}

export interface ZdsServerEvents {
  /** A proxy said hello; its snapshot replay starts. */
  connected: [id: number];
  /** A proxy acknowledged SnapshotSent. */
  snapshotSent: [id: number];
  disconnected: [id: number];
}

export class ZdsServer extends EventEmitter<ZdsServerEvents> {
  readonly path: string;
  readonly registry: Registry;
  #listener: SeqpacketServer;
  #pods: ZdsPodSource;
  #options: { helloTimeoutMs: number; ackTimeoutMs: number };
  /** Connections that said hello, oldest first: the last one receives new Adds. */
  #connections: AgentConnection[] = [];
  #pending = new Set<AgentConnection>();
  /** The pods each connection was handed (Add sent and answered, NACKs included: those retry). */
  #handed = new Map<AgentConnection, Set<WorkloadUid>>();
  /** Pods of lost connections being re-sent; a Del meanwhile takes its pod out. */
  #redelivering = new Set<Set<WorkloadUid>>();
  #gauge: Gauge;

  private constructor(listener: SeqpacketServer, options: ZdsServerOptions, registry: Registry) {
    super();
    this.#listener = listener;
    this.path = listener.path;
    this.#pods = options.pods;
    this.registry = registry;
    this.#options = {
      helloTimeoutMs: options.helloTimeoutMs ?? 5000,
      ackTimeoutMs: options.ackTimeoutMs ?? 5000,
    };
    // A restarted listener in the same agent reuses the gauge it registered before.
    this.#gauge =
      (registry.getSingleMetric(CONNECTED_GAUGE) as Gauge | undefined) ??
      new Gauge({
        name: CONNECTED_GAUGE,
        help: 'Number of node proxies connected over ZDS',
        registers: [registry],
      });
    this.#gauge.set(0);
    listener.on('connection', (socket) => this.#onConnection(socket));
    listener.on('error', (err) => log.error('ZDS listener error', { error: err.message }));
  }

  /** Listens at `path` (default /var/run/ztunnel/ztunnel.sock), replacing a stale socket file. */
  static listen(options: ZdsServerOptions): ZdsServer {
    const path = options.path ?? ZDS_SOCKET_PATH;
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    const listener = SeqpacketServer.listen(path, {
      mode: options.mode ?? 0o600,
      maxMessageSize: ZDS_MAX_MESSAGE,
    });
    log.info('ZDS server listening', { path });
    return new ZdsServer(listener, options, options.registry ?? new Registry());
  }

  get connectionCount(): number {
    return this.#connections.length;
  }

  /**
   * Tells the newest proxy to start proxying pod `uid` inside `netns`. Rejects with a retryable
   * ZdsError when no proxy is connected, the proxy NACKs, or it does not answer in time.
   */
  async addWorkload(uid: WorkloadUid, info: WorkloadInfo, netns: NetnsRef): Promise<void> {
    const conn = this.#connections.at(-1);
    if (!conn) {
      throw new ZdsError(
        'ZDS_NO_CONNECTION',
        `no ztunnel connection on ${this.path}: cannot add pod ${uid}; is ztunnel running?`,
        {
          retryable: true,
        },
      );
    }
    const error = await this.#sendAdd(conn, uid, info, netns);
    this.#handed.get(conn)?.add(uid);
    if (error !== '') {
      throw new ZdsError('ZDS_NACK', `ztunnel could not add pod ${uid}: ${error}`, { retryable: true });
    }
  }

  /** Tells every connected proxy to drop pod `uid`. With no proxy connected there is nothing to do. */
  async delWorkload(uid: WorkloadUid): Promise<void> {
    for (const handed of this.#handed.values()) handed.delete(uid);
    for (const lost of this.#redelivering) lost.delete(uid);
    const results = await Promise.allSettled(this.#connections.map((c) => c.request({ kind: 'del', uid })));
    const failures = results.flatMap((r) =>
      r.status === 'rejected' ? [errorMessage(r.reason)] : r.value !== '' ? [`NACK: ${r.value}`] : [],
    );
    if (failures.length > 0) {
      throw new ZdsError(
        'ZDS_NACK',
        `deleting pod ${uid} failed on ${failures.length} ztunnel connection(s): ${failures.join('; ')}`,
        {
          retryable: true,
        },
      );
    }
  }

  /** Stops listening and drops every connection. */
  close(): void {
    this.#listener.close();
    for (const conn of [...this.#pending, ...this.#connections]) conn.close('agent shutting down');
  }

  async #sendAdd(
    conn: AgentConnection,
    uid: WorkloadUid,
    info: WorkloadInfo,
    netns: NetnsRef,
  ): Promise<string> {
    let handle: NetnsHandle;
    try {
      handle = typeof netns === 'string' ? NetnsHandle.open(netns) : netns;
    } catch (err) {
      throw new ZdsError('ZDS_NETNS', `cannot open network namespace of pod ${uid}: ${errorMessage(err)}`, {
        retryable: false,
        cause: err,
      });
    }
    try {
      return await conn.request({ kind: 'add', uid, workloadInfo: info }, [handle.fd]);
    } finally {
      if (typeof netns === 'string') handle.close();
    }
  }

  #onConnection(socket: SeqpacketSocket): void {
    const conn = new AgentConnection(socket, this.#options);
    this.#pending.add(conn);
    conn.closed.then(() => this.#onClosed(conn));
    conn.hello.then(
      (hello) => this.#onHello(conn, hello.version),
      () => {},
    );
  }

  #onHello(conn: AgentConnection, version: number): void {
    this.#pending.delete(conn);
    if (conn.isClosed) return;
    if (version !== ZDS_VERSION_V1)
      log.warn('ztunnel announced an unknown ZDS version', { conn: conn.id, version });
    this.#connections.push(conn);
    this.#handed.set(conn, new Set());
    this.#gauge.set(this.#connections.length);
    log.info('ztunnel connected', { conn: conn.id, connections: this.#connections.length });
    this.emit('connected', conn.id);
    this.#replaySnapshot(conn).catch((err) => conn.close(`snapshot failed: ${errorMessage(err)}`));
  }

  /** Ack errors during the snapshot are only logged (the pod stays known); I/O errors drop the connection. */
  async #replaySnapshot(conn: AgentConnection): Promise<void> {
    const pods = await this.#pods.snapshot();
    for (const pod of pods) {
      let error: string;
      if (pod.netns === null) {
        error = await conn.request({ kind: 'keep', uid: pod.uid });
      } else {
        try {
          error = await this.#sendAdd(conn, pod.uid, pod.info, pod.netns);
          this.#handed.get(conn)?.add(pod.uid);
        } catch (err) {
          if (!(err instanceof ZdsError) || err.code !== 'ZDS_NETNS') throw err;
          log.warn('pod netns unavailable, sending keep', { uid: pod.uid, error: err.message });
          error = await conn.request({ kind: 'keep', uid: pod.uid });
        }
      }
      if (error !== '') log.warn('ztunnel NACKed snapshot entry', { conn: conn.id, uid: pod.uid, error });
    }
    const error = await conn.request({ kind: 'snapshotSent' });
    if (error !== '') log.warn('ztunnel NACKed SnapshotSent', { conn: conn.id, error });
    log.info('snapshot sent', { conn: conn.id, pods: pods.length });
    this.emit('snapshotSent', conn.id);
  }

  #onClosed(conn: AgentConnection): void {
    this.#pending.delete(conn);
    const i = this.#connections.indexOf(conn);
    if (i < 0) return;
    this.#connections.splice(i, 1);
    const lost = this.#handed.get(conn) ?? new Set<WorkloadUid>();
    this.#handed.delete(conn);
    this.#gauge.set(this.#connections.length);
    log.info('ztunnel disconnected', { conn: conn.id, connections: this.#connections.length });
    this.emit('disconnected', conn.id);
    const newest = this.#connections.at(-1);
    if (newest && lost.size > 0) {
      this.#redeliver(lost, newest).catch((err) =>
        log.warn('cannot re-send the pods of a lost ztunnel connection', {
          conn: newest.id,
          error: errorMessage(err),
        }),
      );
    }
  }

  /** Re-sends to `to` the pods in `lost` it was not handed itself, with the netns the pod source holds. */
  async #redeliver(lost: Set<WorkloadUid>, to: AgentConnection): Promise<void> {
    this.#redelivering.add(lost);
    try {
      await this.#resend(lost, to);
    } finally {
      this.#redelivering.delete(lost);
    }
  }

  async #resend(lost: Set<WorkloadUid>, to: AgentConnection): Promise<void> {
    const has = this.#handed.get(to);
    const pods = (await this.#pods.snapshot()).filter((p) => lost.has(p.uid) && !has?.has(p.uid));
    for (const pod of pods) {
      if (to.isClosed) return;
      if (!lost.has(pod.uid)) continue;
      if (pod.netns === null) {
        log.warn('pod of a lost ztunnel connection has no known netns; not re-sent', { uid: pod.uid });
        continue;
      }
      log.info('re-sending pod of a lost ztunnel connection', { uid: pod.uid, conn: to.id });
      const error = await this.#sendAdd(to, pod.uid, pod.info, pod.netns);
      has?.add(pod.uid);
      if (error !== '') log.warn('ztunnel NACKed a re-sent pod', { conn: to.id, uid: pod.uid, error });
    }
  }
}
