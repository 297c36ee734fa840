/**
 * The mutual-TLS half of HBONE: TLS 1.3 only, ALPN h2, the two AES-GCM suites, no SNI, no resumption.
 * Servers present the local pod's certificate and accept only clients of the same trust domain; clients
 * present the source pod's certificate and accept only a server whose URI SAN is an expected identity.
 * Secure contexts are built once per identity and certificate (rebuilt on rotation), never per connection.
 */
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import tls from 'node:tls';
import { AmbitError } from '../errors.js';
import type { WorkloadCertificate } from '../identity/certificate.js';
import { certificateUriSans } from '../identity/der.js';
import type { CertificateManager } from '../identity/manager.js';
import { splitPemBundle } from '../identity/pem.js';
import { isSpiffeId, type SpiffeId, type TrustDomain, trustDomainOf } from '../identity/spiffe.js';
import { type HboneErrorCode, hboneError } from './errors.js';

export const HBONE_ALPN = 'h2';
export const HBONE_CIPHERS = 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256';
/**
 * Istio's ztunnel accepts HBONE through the tls-listener crate with its defaults: a handshake must finish
 * within 10 s and at most 64 handshakes run at once per listener.
 */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
export const MAX_PENDING_HANDSHAKES = 64;

export interface HandshakeLimits {
  /** From accept to verified client: an absolute deadline, so a client sending a byte now and then gains nothing. */
  handshakeTimeoutMs: number;
  /** Handshakes in progress at once; one more cuts the oldest (a real client finishes in milliseconds). */
  maxPendingHandshakes: number;
}

/** Key material and protocol limits shared by client and server contexts. */
function contextOptions(cert: WorkloadCertificate): tls.SecureContextOptions {
  return {
    key: cert.privateKeyPem(),
    cert: cert.certChainPem.join('\n'),
    ca: splitPemBundle(cert.rootPem),
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphers: HBONE_CIPHERS,
  };
}

interface CachedContext {
  certificate: WorkloadCertificate;
  context: tls.SecureContext;
}

export interface HboneTlsEvents {
  /** The certificate of `identity` changed; contexts built from the old one are stale. */
  invalidated: [identity: SpiffeId];
}

/** Per-identity secure contexts over a certificate manager, dropped when a certificate rotates. */
export class HboneTlsContexts extends EventEmitter<HboneTlsEvents> {
  readonly certificates: CertificateManager;
  readonly #cache = new Map<SpiffeId, Promise<CachedContext>>();
  readonly #onForgotten = (identity: SpiffeId): void => {
    this.#cache.delete(identity);
    this.emit('invalidated', identity);
  };
  readonly #onRotated = (
    identity: SpiffeId,
    _cert: WorkloadCertificate,
    previous?: WorkloadCertificate,
  ): void => {
    // The first issuance replaces nothing; a context built from it is current.
    if (previous) this.#onForgotten(identity);
  };

  constructor(certificates: CertificateManager) {
    super();
    this.certificates = certificates;
    certificates.on('rotated', this.#onRotated);
    certificates.on('forgotten', this.#onForgotten);
  }

  /** The cached context for `identity`, built on first use and after each rotation. */
  async secureContext(identity: SpiffeId): Promise<CachedContext> {
    let cached = this.#cache.get(identity);
    if (cached) {
      const entry = await cached.catch(() => undefined);
      if (entry && this.certificates.current(identity) === entry.certificate) return entry;
      if (this.#cache.get(identity) === cached) this.#cache.delete(identity);
    }
    cached = this.#cache.get(identity);
    if (!cached) {
      cached = this.certificates.fetch(identity).then((certificate) => ({
        certificate,
        context: tls.createSecureContext(contextOptions(certificate)),
      }));
      this.#cache.set(identity, cached);
      cached.catch(() => {
        if (this.#cache.get(identity) === cached) this.#cache.delete(identity);
      });
    }
    return cached;
  }

  /** Options for `tls.connect` / an HTTP/2 `createConnection`: mTLS as `source`, server must be in `expected`. */
  async clientOptions(source: SpiffeId, expected: readonly SpiffeId[]): Promise<tls.ConnectionOptions> {
    if (expected.length === 0) {
      throw hboneError(
        'ERR_NO_EXPECTED_IDENTITY',
        'an HBONE client needs at least one expected server identity',
      );
    }
    const { context } = await this.secureContext(source);
    const allowed = [...expected];
    // No `servername`: Node then sends no SNI extension, as ztunnel (IPs are illegal in SNI anyway).
    return {
      secureContext: context,
      ALPNProtocols: [HBONE_ALPN],
      rejectUnauthorized: true,
      checkServerIdentity: (_host, cert) => checkServerSpiffe(cert, allowed),
    };
  }

  /** Options for `tls.createServer` / `http2.createSecureServer` presenting `identity`'s certificate. */
  async serverOptions(identity: SpiffeId): Promise<tls.TlsOptions> {
    return serverTlsOptions(await this.certificates.fetch(identity));
  }

  close(): void {
    this.certificates.off('rotated', this.#onRotated);
    this.certificates.off('forgotten', this.#onForgotten);
    this.#cache.clear();
  }
}

function serverTlsOptions(certificate: WorkloadCertificate): tls.TlsOptions {
  return {
    ...contextOptions(certificate),
    ALPNProtocols: [HBONE_ALPN],
    requestCert: true,
    // Chain errors are turned into coded rejections by HboneServerTls, which also checks the trust domain.
    rejectUnauthorized: false,
  };
}

function checkServerSpiffe(cert: tls.PeerCertificate, expected: readonly SpiffeId[]): Error | undefined {
  const presented = cert.raw ? certificateUriSans(cert.raw) : [];
  if (presented.some((uri) => expected.includes(uri as SpiffeId))) return undefined;
  return hboneError(
    'ERR_IDENTITY_MISMATCH',
    `HBONE server presented ${presented.join(', ') || 'no URI SAN'}, expected ${expected.join(' or ')}`,
  );
}

/** SPIFFE URI SANs of the peer's leaf certificate (not checked for trust). */
export function peerSpiffeIds(socket: tls.TLSSocket): SpiffeId[] {
  const raw = peerCertificateDer(socket);
  if (!raw) return [];
  return certificateUriSans(raw).filter(isSpiffeId);
}

// getPeerCertificate(), not getPeerX509Certificate(): on Node 20 the latter returns undefined on the client
// side once 'secureConnect' has been handled.
function peerCertificateDer(socket: tls.TLSSocket): Buffer | undefined {
  const raw = socket.getPeerCertificate()?.raw;
  return raw && raw.length > 0 ? raw : undefined;
}

/** The peer's identity on a handshaken socket whose chain verified; throws a coded error otherwise. */
export function peerIdentity(socket: tls.TLSSocket): SpiffeId {
  if (!peerCertificateDer(socket)) {
    throw hboneError('ERR_NO_PEER_CERTIFICATE', 'the HBONE peer presented no certificate');
  }
  if (!socket.authorized) {
    throw hboneError(
      'ERR_PEER_UNTRUSTED',
      `the HBONE peer's certificate does not chain to the trust bundle (${authorizationCode(socket)})`,
    );
  }
  const ids = peerSpiffeIds(socket);
  if (ids.length === 0) {
    throw hboneError('ERR_NO_PEER_IDENTITY', "the HBONE peer's certificate has no SPIFFE URI SAN");
  }
  return ids[0]!;
}

/** The client's identity, required to be in `trustDomain` (ztunnel's inbound trust-domain check). */
function verifiedClientIdentity(socket: tls.TLSSocket, trustDomain: TrustDomain): SpiffeId {
  peerIdentity(socket);
  const ids = peerSpiffeIds(socket);
  const inDomain = ids.find((id) => trustDomainOf(id) === trustDomain);
  if (!inDomain) {
    throw hboneError(
      'ERR_TRUST_DOMAIN',
      `HBONE client identity ${ids.join(', ')} is not in trust domain ${JSON.stringify(trustDomain)}`,
    );
  }
  if (socket.alpnProtocol !== HBONE_ALPN) {
    throw hboneError(
      'ERR_ALPN',
      `HBONE client negotiated ALPN ${String(socket.alpnProtocol)}, not ${HBONE_ALPN}`,
    );
  }
  return inDomain;
}

export interface HboneServerTlsEvents {
  /** A client passed every check; hand `socket` to the HTTP/2 server. */
  secure: [socket: tls.TLSSocket, peer: SpiffeId];
  /** A client failed the handshake, a check or a limit; its socket is destroyed right after. */
  rejected: [error: AmbitError, socket: net.Socket];
  /** New connections now get the rotated certificate with this serial number. */
  reloaded: [serialNumber: string];
}

/** The TCP socket a server-side TLSSocket wraps (Node keeps it as `_parent`). */
function rawSocketOf(socket: tls.TLSSocket): net.Socket {
  return (socket as unknown as { _parent?: net.Socket })._parent ?? socket;
}

/**
 * Server-side TLS for one pod's 15008 listener. Raw TCP sockets (e.g. accepted inside the pod netns) go in
 * through `accept`; verified TLS sockets come out as 'secure' events. The context follows rotations.
 * Every socket that does not become 'secure' is destroyed: on a failed handshake, after the handshake
 * deadline, or when too many handshakes are in progress (the oldest goes).
 */
export class HboneServerTls extends EventEmitter<HboneServerTlsEvents> {
  readonly identity: SpiffeId;
  readonly #contexts: HboneTlsContexts;
  readonly #server: tls.Server;
  readonly #limits: HandshakeLimits;
  /** Accepted sockets still handshaking, oldest first, with their deadline timers. */
  readonly #pending = new Map<net.Socket, NodeJS.Timeout>();
  /** Sockets this class cut (already reported): their TLS layer's own error is not reported again. */
  readonly #cutSockets = new WeakSet<net.Socket>();
  #closed = false;
  readonly #onInvalidated = (identity: SpiffeId): void => {
    if (identity === this.identity && !this.#closed) void this.#reload();
  };

  private constructor(
    contexts: HboneTlsContexts,
    identity: SpiffeId,
    options: tls.TlsOptions,
    limits: HandshakeLimits,
  ) {
    super();
    this.identity = identity;
    this.#contexts = contexts;
    this.#limits = limits;
    // Node's own handshake timeout restarts on every byte received; #pending keeps the absolute deadline.
    this.#server = tls.createServer({ ...options, handshakeTimeout: limits.handshakeTimeoutMs });
    this.#server.on('secureConnection', (socket) => {
      this.#settle(rawSocketOf(socket));
      this.#check(socket);
    });
    this.#server.on('tlsClientError', (err, socket) => {
      // With a 'tlsClientError' listener Node leaves the socket open: without this it stays in CLOSE-WAIT.
      const raw = rawSocketOf(socket);
      this.#settle(raw);
      if (this.#cutSockets.has(raw)) {
        socket.destroy();
        return;
      }
      this.emit(
        'rejected',
        hboneError('ERR_TLS_HANDSHAKE', `HBONE TLS handshake failed: ${err.message}`),
        socket,
      );
      socket.destroy();
    });
    contexts.on('invalidated', this.#onInvalidated);
  }

  static async create(
    contexts: HboneTlsContexts,
    identity: SpiffeId,
    limits: Partial<HandshakeLimits> = {},
  ): Promise<HboneServerTls> {
    return new HboneServerTls(contexts, identity, await contexts.serverOptions(identity), {
      handshakeTimeoutMs: limits.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
      maxPendingHandshakes: limits.maxPendingHandshakes ?? MAX_PENDING_HANDSHAKES,
    });
  }

  /** Handshakes accepted and not yet finished. */
  get pendingHandshakes(): number {
    return this.#pending.size;
  }

  /** Starts the TLS handshake on an accepted TCP connection. */
  accept(raw: net.Socket): void {
    if (this.#closed) {
      raw.destroy();
      return;
    }
    const timer = setTimeout(
      () =>
        this.#cut(
          raw,
          hboneError('ERR_TLS_HANDSHAKE_TIMEOUT', 'HBONE TLS handshake failed: TLS handshake timeout'),
        ),
      this.#limits.handshakeTimeoutMs,
    );
    timer.unref(); // a pending handshake never keeps the process alive
    this.#pending.set(raw, timer);
    raw.once('close', () => this.#settle(raw));
    if (this.#pending.size > this.#limits.maxPendingHandshakes) {
      const oldest = this.#pending.keys().next().value as net.Socket;
      this.#cut(
        oldest,
        hboneError(
          'ERR_TLS_HANDSHAKE_LIMIT',
          `HBONE TLS handshake failed: more than ${this.#limits.maxPendingHandshakes} handshakes in progress, the oldest is cut`,
        ),
      );
    }
    if (!raw.destroyed) this.#server.emit('connection', raw);
  }

  close(): void {
    this.#closed = true;
    this.#contexts.off('invalidated', this.#onInvalidated);
    for (const [raw, timer] of [...this.#pending]) {
      clearTimeout(timer);
      raw.destroy();
    }
    this.#pending.clear();
  }

  #settle(raw: net.Socket): void {
    const timer = this.#pending.get(raw);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.#pending.delete(raw);
  }

  #cut(raw: net.Socket, error: AmbitError): void {
    this.#settle(raw);
    this.#cutSockets.add(raw);
    this.emit('rejected', error, raw);
    raw.destroy();
  }

  #check(socket: tls.TLSSocket): void {
    try {
      const peer = verifiedClientIdentity(socket, trustDomainOf(this.identity));
      this.emit('secure', socket, peer);
    } catch (err) {
      socket.destroy();
      this.emit('rejected', err as AmbitError, socket);
    }
  }

  async #reload(): Promise<void> {
    try {
      const certificate = await this.#contexts.certificates.fetch(this.identity);
      this.#server.setSecureContext(serverTlsOptions(certificate));
      this.emit('reloaded', certificate.serialNumber);
    } catch {
      // Certificate unavailable: keep the old context; connections fail the client's expiry check if it lapsed.
    }
  }
}

export interface HboneConnectOptions {
  source: SpiffeId;
  expected: readonly SpiffeId[];
  /** An already connected (or connecting) TCP socket, e.g. from connectInNetns; else host/port. */
  socket?: net.Socket;
  host?: string;
  port?: number;
}

export interface HboneTlsConnection {
  socket: tls.TLSSocket;
  /** The expected identity the server proved. */
  peer: SpiffeId;
}

/** Dials (or wraps) a TCP connection and completes the HBONE client handshake. */
export async function connectHbone(
  contexts: HboneTlsContexts,
  options: HboneConnectOptions,
): Promise<HboneTlsConnection> {
  const base = await contexts.clientOptions(options.source, options.expected);
  const socket = tls.connect({
    ...base,
    ...(options.socket ? { socket: options.socket } : { host: options.host, port: options.port }),
  });
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => {
      socket.off('secureConnect', onSecure);
      socket.destroy();
      reject(classifyClientError(err, socket));
    };
    const onSecure = (): void => {
      socket.off('error', fail);
      if (socket.alpnProtocol !== HBONE_ALPN) {
        fail(hboneError('ERR_ALPN', `HBONE server negotiated ALPN ${String(socket.alpnProtocol)}, not h2`));
        return;
      }
      const presented = peerSpiffeIds(socket);
      resolve({ socket, peer: options.expected.find((id) => presented.includes(id))! });
    };
    socket.once('error', fail);
    socket.once('secureConnect', onSecure);
  });
}

function classifyClientError(err: Error, socket: tls.TLSSocket): AmbitError {
  if (err instanceof AmbitError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== undefined && code === authorizationCode(socket)) {
    return hboneError(
      'ERR_PEER_UNTRUSTED',
      `HBONE server certificate does not chain to the trust bundle (${code}): ${err.message}`,
      { cause: err },
    );
  }
  // Keeps the socket's own code (ECONNRESET, an OpenSSL code): a plain AmbitError.
  return new AmbitError(
    code ?? ('ERR_TLS_HANDSHAKE' satisfies HboneErrorCode),
    `HBONE TLS connection failed: ${err.message}`,
    {
      cause: err,
    },
  );
}

/** Node stores the OpenSSL verify code (a string) in `authorizationError`, although typed as an Error. */
function authorizationCode(socket: tls.TLSSocket): string | undefined {
  const value: unknown = socket.authorizationError;
  if (typeof value === 'string') return value;
  return value instanceof Error ? ((value as NodeJS.ErrnoException).code ?? value.message) : undefined;
}
