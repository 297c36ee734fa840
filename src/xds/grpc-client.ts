/**
 * A small gRPC client over node:http2, enough for the ztunnel's two control-plane calls (the CA's unary
 * CreateCertificate and the xDS bidi stream). Hand-written rather than @grpc/grpc-js because the ztunnel
 * is sized per node: in bare Node importing grpc-js costs ~11 MiB of resident memory against ~3 MiB for
 * node:http2, and a process with both clients connected to the control plane measured ~5 MiB less RSS
 * (~2 MiB of it heap) without it. The ztunnel needs none of its resolvers, balancers, retries or
 * compression. The control plane's server keeps grpc-js and is the peer this client is tested against.
 *
 * The wire follows gRPC over HTTP/2: a POST with `content-type: application/grpc` and `te: trailers`,
 * `grpc-timeout` from the deadline, messages framed as a flag byte plus a 4-byte big-endian length, and
 * the status in the trailers (`grpc-status`, percent-encoded `grpc-message`) or, for a trailers-only
 * answer, in the response headers. Whatever a peer sends ends as a status on the call, never a throw.
 */
import { EventEmitter } from 'node:events';
import http2 from 'node:http2';

/** The gRPC status codes (the numbers are the wire's). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

const STATUS_NAMES = new Map<number, string>(Object.entries(GrpcStatus).map(([k, v]) => [v, k]));

/** `UNAVAILABLE` for 14; the number itself for a code outside the table. */
export function grpcStatusName(code: number): string {
  return STATUS_NAMES.get(code) ?? String(code);
}

/** A call that ended with a status other than OK; the message reads `14 UNAVAILABLE: <details>`. */
export class GrpcError extends Error {
  readonly code: number;
  readonly details: string;

  constructor(code: number, details: string, options?: { cause?: unknown }) {
    super(`${code} ${grpcStatusName(code)}: ${details}`, options);
    this.name = 'GrpcError';
    this.code = code;
    this.details = details;
  }
}

/** grpc-js's default: a larger response fails the call with RESOURCE_EXHAUSTED. */
export const DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 4 * 1024 * 1024;
const HEADER_BYTES = 5;
/** grpc-timeout allows at most 8 digits. */
const MAX_TIMEOUT_DIGITS = 99_999_999;

export type Metadata = Record<string, string>;

export interface GrpcChannelOptions {
  /** `host:port` to dial (IPv6 in brackets). */
  target: string;
  /** PEM roots to trust; undefined = Node's default roots. */
  ca?: string;
  /** A name to verify the server certificate against (and send as SNI and :authority) instead of the host. */
  servername?: string;
  /** Metadata for every call, produced afresh per call (a token file is re-read each time). */
  metadata?: () => Promise<Metadata> | Metadata;
  maxReceiveMessageBytes?: number;
}

export interface CallOptions {
  /** Absolute time in ms (Date.now() scale); past it the call ends with DEADLINE_EXCEEDED. */
  deadline?: number;
  metadata?: Metadata;
}

export type Serialize<T> = (message: T) => Uint8Array;
export type Deserialize<T> = (bytes: Buffer) => T;

export interface GrpcStreamEvents<Res> {
  data: [message: Res];
  /** The call ended with a status other than OK. */
  error: [error: GrpcError];
  /** The server ended the call with OK. */
  end: [];
}

/** The HTTP status of a non-gRPC answer, mapped as gRPC's HTTP-to-status table says. */
function statusFromHttp(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/** A stream reset by the peer, mapped as gRPC's HTTP/2 error-code table says. */
function statusFromRstCode(rstCode: number): number {
  const c = http2.constants;
  switch (rstCode) {
    case c.NGHTTP2_REFUSED_STREAM:
      return GrpcStatus.UNAVAILABLE;
    case c.NGHTTP2_CANCEL:
      return GrpcStatus.CANCELLED;
    case c.NGHTTP2_ENHANCE_YOUR_CALM:
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case c.NGHTTP2_INADEQUATE_SECURITY:
      return GrpcStatus.PERMISSION_DENIED;
    default:
      return GrpcStatus.INTERNAL;
  }
}

/** The status of response headers that are not a gRPC answer: a non-200 HTTP status, another content type. */
function refusedResponse(headers: http2.IncomingHttpHeaders): GrpcError | undefined {
  const httpStatus = Number(headerValue(headers, ':status'));
  if (httpStatus !== 200)
    return new GrpcError(statusFromHttp(httpStatus), `Received HTTP status code ${httpStatus}`);
  // A trailers-only answer is judged by its status alone.
  if (headerValue(headers, 'grpc-status') !== undefined) return undefined;
  const contentType = headerValue(headers, 'content-type') ?? '';
  if (!contentType.startsWith('application/grpc'))
    return new GrpcError(GrpcStatus.UNKNOWN, `Invalid content-type "${contentType}"`);
  return undefined;
}

function headerValue(h: http2.IncomingHttpHeaders | undefined, name: string): string | undefined {
  const v = h?.[name];
  return Array.isArray(v) ? v[0] : v;
}

function percentDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function frame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out[0] = 0;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, HEADER_BYTES);
  return out;
}

/** Splits the response body into messages; a message may span any number of DATA chunks. */
class MessageReader {
  readonly #max: number;
  #chunks: Buffer[] = [];
  #bytes = 0;
  /** Length of the message being read; -1 while its header is incomplete. */
  #need = -1;

  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }

  /** True while part of a message has arrived. */
  get partial(): boolean {
    return this.#bytes > 0 || this.#need >= 0;
  }

  /** The complete messages so far; throws a GrpcError on a frame this client cannot accept. */
  push(chunk: Buffer): Buffer[] {
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.#need < 0) {
        if (this.#bytes < HEADER_BYTES) break;
        const header = this.#take(HEADER_BYTES);
        const length = header.readUInt32BE(1);
        if (header[0] === 1)
          throw new GrpcError(
            GrpcStatus.INTERNAL,
            'compressed message received, but no grpc-encoding was negotiated',
          );
        if (header[0] !== 0) throw new GrpcError(GrpcStatus.INTERNAL, `invalid message flag ${header[0]}`);
        if (length > this.#max)
          throw new GrpcError(
            GrpcStatus.RESOURCE_EXHAUSTED,
            `Received message larger than max (${length} vs ${this.#max})`,
          );
        this.#need = length;
      }
      if (this.#bytes < this.#need) break;
      out.push(this.#take(this.#need));
      this.#need = -1;
    }
    return out;
  }

  #take(n: number): Buffer {
    this.#bytes -= n;
    const first = this.#chunks[0];
    if (n === 0 || first === undefined) return Buffer.alloc(0);
    if (first.length >= n) {
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let offset = 0;
    while (offset < n) {
      const c = this.#chunks[0]!;
      const k = Math.min(c.length, n - offset);
      c.copy(out, offset, 0, k);
      offset += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    return out;
  }
}

/** One call: opened once its metadata is ready, ended exactly once with 'end' (OK) or 'error'. */
export class GrpcStream<Req, Res> extends EventEmitter<GrpcStreamEvents<Res>> {
  readonly #serialize: Serialize<Req>;
  readonly #deserialize: Deserialize<Res>;
  readonly #reader: MessageReader;
  /** Frames written before the HTTP/2 stream exists; `end` = half-close requested. */
  #queued: Buffer[] = [];
  #halfClosed = false;
  #stream: http2.ClientHttp2Stream | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #done = false;

  /** @internal opened by GrpcChannel. */
  constructor(serialize: Serialize<Req>, deserialize: Deserialize<Res>, maxReceiveBytes: number) {
    super();
    this.#serialize = serialize;
    this.#deserialize = deserialize;
    this.#reader = new MessageReader(maxReceiveBytes);
  }

  write(message: Req): void {
    if (this.#done || this.#halfClosed) return;
    let bytes: Buffer;
    try {
      bytes = frame(this.#serialize(message));
    } catch (err) {
      this.fail(GrpcStatus.INTERNAL, `Request message serialization failure: ${String(err)}`, err);
      return;
    }
    if (this.#stream) this.#stream.write(bytes);
    else this.#queued.push(bytes);
  }

  /** Half-close: no more requests; responses keep arriving. */
  end(): void {
    if (this.#done || this.#halfClosed) return;
    this.#halfClosed = true;
    this.#stream?.end();
  }

  cancel(): void {
    this.fail(GrpcStatus.CANCELLED, 'Cancelled on client');
  }

  /** @internal */
  get done(): boolean {
    return this.#done;
  }

  /** @internal */
  startDeadline(deadline: number | undefined): void {
    if (deadline === undefined) return;
    this.#deadlineTimer = setTimeout(
      () => this.fail(GrpcStatus.DEADLINE_EXCEEDED, 'Deadline exceeded'),
      Math.max(0, deadline - Date.now()),
    );
  }

  /** @internal the HTTP/2 stream carrying this call. */
  attach(stream: http2.ClientHttp2Stream, session: http2.ClientHttp2Session): void {
    this.#stream = stream;
    let response: http2.IncomingHttpHeaders | undefined;
    let trailers: http2.IncomingHttpHeaders | undefined;
    let streamError: Error | undefined;
    stream.on('response', (headers) => {
      response = headers;
      const refused = refusedResponse(headers);
      // Not a gRPC answer: its body is not parsed as messages.
      if (refused) this.fail(refused.code, refused.details);
    });
    stream.on('trailers', (headers) => {
      trailers = headers;
    });
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.on('error', (err) => {
      streamError = err;
    });
    // The body ended (END_STREAM, the status with it or missing) or the stream closed abnormally.
    const settle = (): void => {
      if (this.#done) return;
      this.#finish(this.#closingStatus(stream, session, response, trailers, streamError));
      // The server has said all it will: a call that never half-closed must not keep the stream open.
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
    };
    stream.on('end', settle);
    stream.on('close', settle);
    for (const bytes of this.#queued) stream.write(bytes);
    this.#queued = [];
    if (this.#halfClosed) stream.end();
  }

  /**
   * @internal ends the call here with a status; a stream still open is reset (RST_STREAM CANCEL) so the
   * server stops too.
   */
  fail(code: number, details: string, cause?: unknown): void {
    if (this.#done) return;
    this.#finish(new GrpcError(code, details, cause === undefined ? undefined : { cause }));
    if (this.#stream && !this.#stream.closed) this.#stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  #onData(chunk: Buffer): void {
    if (this.#done) return;
    let messages: Buffer[];
    try {
      messages = this.#reader.push(chunk);
    } catch (err) {
      const e = err as GrpcError;
      this.fail(e.code, e.details);
      return;
    }
    for (const bytes of messages) {
      let message: Res;
      try {
        message = this.#deserialize(bytes);
      } catch (err) {
        this.fail(GrpcStatus.INTERNAL, `Failed to parse server response: ${String(err)}`, err);
        return;
      }
      this.emit('data', message);
      if (this.#done) return;
    }
  }

  /** How a call whose stream ended or closed came out: undefined for OK. */
  #closingStatus(
    stream: http2.ClientHttp2Stream,
    session: http2.ClientHttp2Session,
    response: http2.IncomingHttpHeaders | undefined,
    trailers: http2.IncomingHttpHeaders | undefined,
    streamError: Error | undefined,
  ): GrpcError | undefined {
    // A trailers-only answer carries the status in the response headers.
    const statusHeaders =
      trailers ?? (headerValue(response, 'grpc-status') !== undefined ? response : undefined);
    const rawStatus = headerValue(statusHeaders, 'grpc-status');
    if (rawStatus !== undefined) {
      const code = /^\d+$/.test(rawStatus) ? Number(rawStatus) : GrpcStatus.UNKNOWN;
      const details = percentDecode(headerValue(statusHeaders, 'grpc-message') ?? '');
      if (code !== GrpcStatus.OK) return new GrpcError(code, details || `status ${rawStatus}`);
      if (this.#reader.partial)
        return new GrpcError(GrpcStatus.INTERNAL, 'the response ended inside a message');
      return undefined;
    }
    // A connection that went away takes its streams with it (Node resets them locally with CANCEL).
    if (session.destroyed)
      return new GrpcError(
        GrpcStatus.UNAVAILABLE,
        `the connection closed before the call ended${streamError ? `: ${streamError.message}` : ''}`,
        { cause: streamError },
      );
    if (streamError) {
      const reset = (streamError as Error & { code?: string }).code === 'ERR_HTTP2_STREAM_ERROR';
      return new GrpcError(
        reset ? statusFromRstCode(stream.rstCode ?? 0) : GrpcStatus.UNAVAILABLE,
        streamError.message,
        { cause: streamError },
      );
    }
    if (stream.rstCode !== undefined && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR)
      return new GrpcError(statusFromRstCode(stream.rstCode), `stream reset with code ${stream.rstCode}`);
    if (response === undefined)
      return new GrpcError(GrpcStatus.UNAVAILABLE, 'the connection closed before the call ended');
    if (this.#reader.partial)
      return new GrpcError(GrpcStatus.INTERNAL, 'the response ended inside a message');
    return new GrpcError(GrpcStatus.UNKNOWN, 'No status received');
  }

  #finish(error: GrpcError | undefined): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#deadlineTimer);
    this.#queued = [];
    if (error) this.emit('error', error);
    else this.emit('end');
  }
}

interface Connection {
  session: http2.ClientHttp2Session;
  /** Calls under way on it: while any is, the connection holds the process open. */
  active: number;
}

/**
 * One HTTP/2 connection to a gRPC server, dialled when a call needs it and dialled again for the next
 * call once it closed, failed or received GOAWAY. It holds the process open only while calls are active.
 */
export class GrpcChannel {
  readonly #o: GrpcChannelOptions;
  #connection: Connection | undefined;
  #closed = false;

  constructor(options: GrpcChannelOptions) {
    this.#o = options;
  }

  unary<Req, Res>(
    path: string,
    serialize: Serialize<Req>,
    deserialize: Deserialize<Res>,
    request: Req,
    options: CallOptions = {},
  ): Promise<Res> {
    return new Promise((resolve, reject) => {
      const call = this.bidi(path, serialize, deserialize, options);
      let response: { message: Res } | undefined;
      call.on('data', (message) => {
        if (response) return call.fail(GrpcStatus.UNIMPLEMENTED, 'Too many responses received');
        response = { message };
      });
      call.on('error', reject);
      call.on('end', () =>
        response
          ? resolve(response.message)
          : reject(new GrpcError(GrpcStatus.UNIMPLEMENTED, 'No message received')),
      );
      call.write(request);
      call.end();
    });
  }

  /** A stream of requests and responses; unary calls are this with one of each. */
  bidi<Req, Res>(
    path: string,
    serialize: Serialize<Req>,
    deserialize: Deserialize<Res>,
    options: CallOptions = {},
  ): GrpcStream<Req, Res> {
    const call = new GrpcStream<Req, Res>(
      serialize,
      deserialize,
      this.#o.maxReceiveMessageBytes ?? DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
    );
    call.startDeadline(options.deadline);
    void this.#open(call, path, options);
    return call;
  }

  /** No new calls; the connection closes once the calls under way have ended. */
  close(): void {
    this.#closed = true;
    this.#connection?.session.close();
    this.#connection = undefined;
  }

  async #open<Req, Res>(call: GrpcStream<Req, Res>, path: string, options: CallOptions): Promise<void> {
    let metadata: Metadata;
    try {
      metadata = { ...(await this.#o.metadata?.()), ...options.metadata };
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      return call.fail(GrpcStatus.UNKNOWN, `Getting metadata failed: ${reason}`, err);
    }
    if (call.done) return;
    if (this.#closed) return call.fail(GrpcStatus.UNAVAILABLE, 'Channel has been shut down');
    const headers: http2.OutgoingHttpHeaders = {
      ...metadata,
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
    };
    if (this.#o.servername) headers[':authority'] = this.#o.servername;
    if (options.deadline !== undefined)
      headers['grpc-timeout'] =
        `${Math.min(Math.max(1, options.deadline - Date.now()), MAX_TIMEOUT_DIGITS)}m`;
    let stream: http2.ClientHttp2Stream;
    const connection = this.#connect();
    try {
      stream = connection.session.request(headers);
    } catch (err) {
      const code = (err as { code?: string }).code;
      const lost = code === 'ERR_HTTP2_INVALID_SESSION' || code === 'ERR_HTTP2_GOAWAY_SESSION';
      return call.fail(lost ? GrpcStatus.UNAVAILABLE : GrpcStatus.INTERNAL, String(err), err);
    }
    if (connection.active++ === 0) connection.session.ref();
    stream.once('close', () => {
      if (--connection.active === 0) connection.session.unref();
    });
    call.attach(stream, connection.session);
  }

  #connect(): Connection {
    const current = this.#connection;
    if (current && !current.session.closed && !current.session.destroyed) return current;
    const session = http2.connect(`https://${this.#o.target}`, {
      ...(this.#o.ca === undefined ? {} : { ca: this.#o.ca }),
      ...(this.#o.servername ? { servername: this.#o.servername } : {}),
      ALPNProtocols: ['h2'],
    });
    const connection: Connection = { session, active: 0 };
    const forget = (): void => {
      if (this.#connection === connection) this.#connection = undefined;
    };
    // The calls on it learn of the failure from their streams; the next call dials again.
    session.on('error', forget);
    session.on('goaway', forget);
    session.on('close', forget);
    session.unref();
    this.#connection = connection;
    return connection;
  }
}
