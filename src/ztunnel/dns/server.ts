/**
 * ztunnel's DNS proxy for one pod: UDP and TCP on 127.0.0.1:15053 (and [::1]:15053 where the pod's
 * loopback has IPv6) inside the pod's netns, where the in-pod rules send the pod's DNS when DNS capture is
 * on. Service hostnames are answered from the workload store; everything else is forwarded upstream.
 * Whatever a pod sends, the proxy answers with an error code or drops it: it never throws.
 */
import type { Socket as UdpSocket } from 'node:dgram';
import type { Server, Socket } from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { WorkloadStore } from '../../discovery/store.js';
import type { Workload } from '../../discovery/types.js';
import { errorCode, errorMessage } from '../../errors.js';
import { DNS_PORT } from '../../node/contract.js';
import { logger } from '../../runtime/log.js';
import type { WorkloadInfo } from '../../zds/messages.js';
import type { PodSockets } from '../proxy/pod-sockets.js';
import type { Forwarder } from './forwarder.js';
import { lookupService } from './lookup.js';
import { type DnsMetrics, dnsLabels } from './metrics.js';
import { tcpMessageReader, writeTcpMessage } from './tcp-framing.js';

const log = logger('dns');

/** The header's fields in its second 16-bit word (RFC 1035 §4.1.1). */
const QR = 0x8000;
const OPCODE_SHIFT = 11;
const OPCODE_MASK = 0xf;
const RD = 0x0100;
const HEADER_BYTES = 12;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NOTIMP: 4 } as const;

/** Without EDNS a UDP answer is at most 512 bytes (RFC 1035); with it, what the client offers, up to 4,096. */
const CLASSIC_UDP_LIMIT = 512;
const MAX_EDNS_UDP_LIMIT = 4096;
/** How long a TCP connection may stay silent (ztunnel: a 5 s request timeout; a forward may take that). */
const TCP_IDLE_TIMEOUT_MS = 10_000;
/** Queries one TCP connection may have in flight (pipelined, RFC 7766); past that it is read no further. */
const TCP_MAX_IN_FLIGHT = 64;

export interface DnsPod {
  readonly uid: string;
  readonly info: WorkloadInfo;
  readonly sockets: PodSockets;
  localWorkload(): Workload | undefined;
}

export interface DnsServerOptions {
  store: WorkloadStore;
  forwarder: Forwarder;
  /** The cluster's DNS domain (CLUSTER_DOMAIN, cluster.local). */
  clusterDomain: string;
  /** Port in the pod (15053; tests may pick another). */
  port?: number;
  /** istio_dns_* (unset: not counted). */
  metrics?: DnsMetrics;
}

/**
 * An answer to `query` with `rcode` and no records: for queries that cannot be read or served. It echoes
 * the question when there is one that was read (stub resolvers such as c-ares reject an answer without
 * it), else it is the header alone.
 */
export function errorAnswer(query: Buffer, rcode: number, question?: dnsPacket.Question): Buffer {
  const flags = (query.readUInt16BE(2) & ((OPCODE_MASK << OPCODE_SHIFT) | RD)) | rcode;
  if (question)
    return dnsPacket.encode({ type: 'response', id: query.readUInt16BE(0), flags, questions: [question] });
  const out = Buffer.alloc(HEADER_BYTES);
  query.copy(out, 0, 0, 2);
  out.writeUInt16BE(QR | flags, 2);
  return out;
}

function udpLimit(query: dnsPacket.DecodedPacket): number {
  const opt = query.additionals?.find((a) => a.type === 'OPT');
  if (!opt || !('udpPayloadSize' in opt)) return CLASSIC_UDP_LIMIT;
  return Math.max(CLASSIC_UDP_LIMIT, Math.min(opt.udpPayloadSize, MAX_EDNS_UDP_LIMIT));
}

/** The answer cut to its header and question with TC set: the client asks again over TCP. */
function truncated(answer: Buffer): Buffer {
  try {
    const decoded = dnsPacket.decode(answer);
    return dnsPacket.encode({
      type: 'response',
      id: decoded.id,
      flags: (answer.readUInt16BE(2) & ~QR) | dnsPacket.TRUNCATED_RESPONSE,
      questions: decoded.questions,
    });
  } catch {
    const header = Buffer.from(answer.subarray(0, HEADER_BYTES));
    header.writeUInt16BE(header.readUInt16BE(2) | dnsPacket.TRUNCATED_RESPONSE, 2);
    header.fill(0, 4);
    return header;
  }
}

export class DnsServer {
  readonly #udp: UdpSocket[] = [];
  readonly #tcp: Server[] = [];
  readonly #port: number;

  constructor(
    readonly pod: DnsPod,
    readonly options: DnsServerOptions,
  ) {
    this.#port = options.port ?? DNS_PORT;
  }

  /** Binds UDP and TCP on the pod's loopback; on failure closes what it bound and rejects. */
  async start(): Promise<void> {
    try {
      for (const host of ['127.0.0.1', '::1']) {
        let tcp: Server;
        try {
          tcp = await this.pod.sockets.listen({ host, port: this.#port, transparent: false });
        } catch (err) {
          // A pod whose loopback has no IPv6 gets the IPv4 server only, as ztunnel does.
          const code = errorCode(err);
          if (host === '::1' && (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT')) break;
          throw err;
        }
        this.#tcp.push(tcp);
        tcp.on('connection', (socket: Socket) => this.#serveTcp(socket));
        tcp.on('error', (err) => log.error('listener error', { component: 'dns', error: err.message }));
        const udp = await this.pod.sockets.udp(host, this.#port);
        this.#udp.push(udp);
        udp.on('message', (message, from) => this.#serveUdp(udp, message, from.address, from.port));
        udp.on('error', (err) => log.error('listener error', { component: 'dns', error: err.message }));
        log.info('starting local DNS server', {
          address: `${host.includes(':') ? `[${host}]` : host}:${this.#port}`,
          component: 'dns',
        });
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    for (const udp of this.#udp.splice(0)) udp.close();
    await Promise.all(this.#tcp.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
  }

  #serveUdp(udp: UdpSocket, message: Buffer, address: string, port: number): void {
    void this.answer(message, 'udp').then((answer) => {
      if (!answer) return;
      udp.send(answer, port, address, (err) => {
        if (err) log.debug('dns answer not sent', { error: err.message });
      });
    });
  }

  #serveTcp(socket: Socket): void {
    this.pod.sockets.track(socket);
    socket.on('error', () => {});
    socket.setTimeout(TCP_IDLE_TIMEOUT_MS, () => socket.destroy());
    let inFlight = 0;
    const feed = tcpMessageReader((message) => {
      const query = Buffer.from(message);
      if (++inFlight >= TCP_MAX_IN_FLIGHT) socket.pause();
      void this.answer(query, 'tcp').then((answer) => {
        if (--inFlight < TCP_MAX_IN_FLIGHT && !socket.destroyed) socket.resume();
        if (answer && !socket.destroyed) writeTcpMessage(socket, answer);
      });
    });
    socket.on('data', feed);
    socket.on('end', () => socket.end());
  }

  /** The answer to one query as sent, or undefined when there is nothing to answer (not a query at all). */
  async answer(message: Buffer, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    try {
      return await this.#answer(message, transport);
    } catch (err) {
      // A bug here must cost one query, never the proxy.
      log.error('dns query failed', { error: errorMessage(err) });
      return message.length >= HEADER_BYTES ? errorAnswer(message, RCODE.SERVFAIL) : undefined;
    }
  }

  async #answer(message: Buffer, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    // Too short for a header, or a response: answering either could only start a loop.
    if (message.length < HEADER_BYTES || (message.readUInt16BE(2) & QR) !== 0) return undefined;
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(message);
    } catch (err) {
      log.debug('malformed dns query', { error: errorMessage(err) });
      return errorAnswer(message, RCODE.FORMERR);
    }
    const opcode = (message.readUInt16BE(2) >> OPCODE_SHIFT) & OPCODE_MASK;
    if (opcode !== 0) return errorAnswer(message, RCODE.NOTIMP);
    const [question, ...more] = query.questions ?? [];
    if (!question || more.length > 0) return errorAnswer(message, RCODE.FORMERR);

    const client = this.pod.localWorkload();
    const source = { namespace: this.pod.info.namespace, network: client?.network ?? '' };
    const metrics = this.options.metrics;
    const labels = dnsLabels(question.type, transport, client);
    metrics?.requests.inc(labels);
    let answer: Buffer;
    if ((question.type === 'A' || question.type === 'AAAA') && (question.class ?? 'IN') === 'IN') {
      const local = lookupService(
        this.options.store,
        { name: question.name, type: question.type },
        source,
        this.options.clusterDomain,
      );
      if (local) {
        this.#accessLog(question, 'success', local.answers.length);
        answer = dnsPacket.encode({
          type: 'response',
          id: query.id,
          flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_AVAILABLE | (query.flag_rd ? RD : 0),
          questions: [question],
          answers: local.answers,
        });
        return transport === 'udp' && answer.length > udpLimit(query) ? truncated(answer) : answer;
      }
    }
    const started = process.hrtime.bigint();
    metrics?.upstreamRequests.inc(labels);
    try {
      answer = await this.options.forwarder.forward(this.pod.sockets, message, transport);
    } catch (err) {
      metrics?.upstreamFailures.inc(labels);
      this.#accessLog(question, `forwarding failed (${errorMessage(err)})`, 0);
      return errorAnswer(message, RCODE.SERVFAIL, question);
    } finally {
      metrics?.upstreamDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
    }
    this.#accessLog(question, 'forwarded', answer.length >= HEADER_BYTES ? answer.readUInt16BE(6) : 0);
    return transport === 'udp' && answer.length > udpLimit(query) ? truncated(answer) : answer;
  }

  #accessLog(question: dnsPacket.Question, result: string, endpoints: number): void {
    log.debug('dns request', {
      'src.workload': this.pod.info.name,
      'src.namespace': this.pod.info.namespace,
      query: question.type,
      domain: question.name,
      result,
      endpoints,
    });
  }
}
