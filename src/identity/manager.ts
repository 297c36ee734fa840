/**
 * Keeps one certificate per identity served on this node, as ztunnel's SecretManager does: a fresh P-256 key
 * and CSR per request, refresh at half-life, per-identity back-off on failure (1 s doubling, capped) while a
 * still-valid certificate keeps being served, and states Initializing | Available | Unavailable for dumps.
 * The back-off is about the CA, not the identity: once any request succeeds, every identity in back-off
 * is retried at once with its back-off reset, rather than each waiting out what it grew during an outage.
 */

import { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { inspect } from 'node:util';
import { AmbitError, errorCode, errorMessage } from '../errors.js';
import { logger } from '../runtime/log.js';
import type { CertificateAuthority } from './ca.js';
import { type CertificateSummary, WorkloadCertificate } from './certificate.js';
import { createWorkloadCsr } from './csr.js';
import { certificateUriSans } from './der.js';
import { type IdentityErrorCode, identityError } from './errors.js';
import { splitPemBundle } from './pem.js';
import type { SpiffeId } from './spiffe.js';

const log = logger('ztunnel::identity::manager');
export const DEFAULT_SECRET_TTL_SECONDS = 86_400;
const DEFAULT_INITIAL_BACKOFF_MS = 1_000;
const DEFAULT_MAX_BACKOFF_MS = 150_000;
// setTimeout fires at once for delays above 2^31-1 ms; longer waits are re-armed when they fire.
const MAX_TIMER_MS = 2 ** 31 - 1;

export type CertState =
  | { state: 'Initializing' }
  | { state: 'Available'; certificate: CertificateSummary }
  | { state: 'Unavailable'; code: string; reason: string };

export interface CertificateManagerOptions {
  ca: CertificateAuthority;
  /** Requested validity (Istio `SECRET_TTL`), seconds. */
  ttlSeconds?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number;
}

export interface CertificateManagerEvents {
  /** A new certificate is being served for `identity` (the first one too, then `previous` is undefined). */
  rotated: [identity: SpiffeId, certificate: WorkloadCertificate, previous: WorkloadCertificate | undefined];
  /** A CA request failed; the next attempt is in `retryInMs`. */
  'refresh-failed': [identity: SpiffeId, error: AmbitError, retryInMs: number];
  forgotten: [identity: SpiffeId];
}

interface Waiter {
  resolve(cert: WorkloadCertificate): void;
  reject(err: AmbitError): void;
}

interface Entry {
  identity: SpiffeId;
  certificate?: WorkloadCertificate;
  failure?: AmbitError;
  backoffMs: number;
  /** The last request failed: the next one is a retry on the back-off schedule. */
  retrying: boolean;
  timer?: NodeJS.Timeout;
  dueAt: number;
  requesting: boolean;
  waiters: Waiter[];
  forgotten: boolean;
}

export class CertificateManager extends EventEmitter<CertificateManagerEvents> {
  readonly #ca: CertificateAuthority;
  readonly #ttlSeconds: number;
  readonly #initialBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #now: () => number;
  readonly #entries = new Map<SpiffeId, Entry>();
  #closed = false;

  constructor(options: CertificateManagerOptions) {
    super();
    this.#ca = options.ca;
    this.#ttlSeconds = positive(options.ttlSeconds ?? DEFAULT_SECRET_TTL_SECONDS, 'ttlSeconds');
    this.#initialBackoffMs = positive(
      options.initialBackoffMs ?? DEFAULT_INITIAL_BACKOFF_MS,
      'initialBackoffMs',
    );
    this.#maxBackoffMs = positive(options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS, 'maxBackoffMs');
    this.#now = options.now ?? Date.now;
  }

  /**
   * The certificate to use for `identity` now. Starts managing the identity on first call and waits for the
   * first issuance; rejects with ERR_CERT_UNAVAILABLE while no valid certificate can be had.
   */
  fetch(identity: SpiffeId): Promise<WorkloadCertificate> {
    if (this.#closed) return Promise.reject(closedError());
    const entry = this.#entry(identity);
    const cert = this.current(identity);
    if (cert) return Promise.resolve(cert);
    // While a retry is in flight its answer is fresher than the last failure: wait for it.
    if (entry.failure && !entry.requesting) return Promise.reject(unavailable(identity, entry.failure));
    return new Promise((resolve, reject) => entry.waiters.push({ resolve, reject }));
  }

  /** Starts fetching in the background (ztunnel's warm-up when a local workload appears). */
  prefetch(identity: SpiffeId): void {
    if (!this.#closed) this.#entry(identity);
  }

  /** The still-valid certificate being served for `identity`, if any. */
  current(identity: SpiffeId): WorkloadCertificate | undefined {
    const cert = this.#entries.get(identity)?.certificate;
    return cert?.isValidAt(this.#now()) ? cert : undefined;
  }

  state(identity: SpiffeId): CertState | undefined {
    const entry = this.#entries.get(identity);
    if (!entry) return undefined;
    const cert = this.current(identity);
    if (cert) return { state: 'Available', certificate: cert.toJSON() };
    if (entry.failure)
      return { state: 'Unavailable', code: entry.failure.code, reason: entry.failure.message };
    if (entry.certificate)
      return {
        state: 'Unavailable',
        code: 'ERR_CERT_EXPIRED' satisfies IdentityErrorCode,
        reason: 'certificate expired',
      };
    return { state: 'Initializing' };
  }

  identities(): SpiffeId[] {
    return [...this.#entries.keys()];
  }

  /** Stops refreshing `identity` (its workload left this node); pending fetches reject. */
  forget(identity: SpiffeId): void {
    const entry = this.#entries.get(identity);
    if (!entry) return;
    this.#drop(
      entry,
      identityError('ERR_CERT_FORGOTTEN', `certificate for ${identity} is no longer managed`),
    );
    this.emit('forgotten', identity);
  }

  close(): void {
    this.#closed = true;
    for (const entry of this.#entries.values()) this.#drop(entry, closedError());
  }

  toJSON(): Record<string, CertState> {
    const out: Record<string, CertState> = {};
    for (const identity of this.#entries.keys()) out[identity] = this.state(identity)!;
    return out;
  }

  [inspect.custom](): string {
    return `CertificateManager ${inspect(this.toJSON(), { depth: 4 })}`;
  }

  #entry(identity: SpiffeId): Entry {
    let entry = this.#entries.get(identity);
    if (!entry) {
      entry = {
        identity,
        backoffMs: this.#initialBackoffMs,
        retrying: false,
        dueAt: 0,
        requesting: false,
        waiters: [],
        forgotten: false,
      };
      this.#entries.set(identity, entry);
      void this.#request(entry);
    }
    return entry;
  }

  #drop(entry: Entry, reason: AmbitError): void {
    entry.forgotten = true;
    clearTimeout(entry.timer);
    this.#entries.delete(entry.identity);
    for (const waiter of entry.waiters.splice(0)) waiter.reject(reason);
  }

  async #request(entry: Entry): Promise<void> {
    if (entry.requesting || entry.forgotten) return;
    entry.requesting = true;
    let issued: WorkloadCertificate | undefined;
    let failure: AmbitError | undefined;
    try {
      issued = await this.#issue(entry);
    } catch (err) {
      failure =
        err instanceof AmbitError
          ? err
          : // Keeps the failure's own code (an errno, gRPC's): a plain AmbitError.
            new AmbitError(
              errorCode(err) ?? ('ERR_CA_REQUEST' satisfies IdentityErrorCode),
              `CA request failed: ${errorMessage(err)}`,
              {
                cause: err,
              },
            );
    }
    entry.requesting = false;
    if (entry.forgotten) return;
    if (issued) this.#install(entry, issued);
    else this.#fail(entry, failure!);
  }

  async #issue(entry: Entry): Promise<WorkloadCertificate> {
    const identity = entry.identity;
    const csr = await createWorkloadCsr(identity);
    // Forgotten while the key was made: the CA need not sign what nobody will use.
    if (entry.forgotten) throw identityError('ERR_CERT_FORGOTTEN', `${identity} is no longer managed`);
    const signed = await this.#ca.sign(csr.csrPem, { ttlSeconds: this.#ttlSeconds, identity });
    const chain = signed.certChainPem.flatMap(splitPemBundle);
    if (chain.length === 0) throw identityError('ERR_CA_RESPONSE', 'the CA returned no certificate');
    if (splitPemBundle(signed.rootPem ?? '').length === 0) {
      throw identityError('ERR_CA_RESPONSE', 'the CA response has no root certificate present');
    }
    const leaf = new X509Certificate(chain[0]!);
    const sans = certificateUriSans(leaf.raw);
    if (sans.length !== 1 || sans[0] !== identity) {
      throw identityError(
        'ERR_IDENTITY_MISMATCH',
        `the CA issued a certificate for ${sans.join(', ') || 'no URI SAN'} instead of ${identity}`,
      );
    }
    if (!leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(csr.publicKeySpki)) {
      throw identityError(
        'ERR_CA_RESPONSE',
        `the CA issued a certificate for ${identity} with a different key`,
      );
    }
    const cert = new WorkloadCertificate(identity, chain, signed.rootPem, csr.privateKeyPem);
    if (!cert.isValidAt(this.#now())) {
      throw identityError(
        'ERR_CA_RESPONSE',
        `the CA issued a certificate for ${identity} that is not valid now (${cert.notBefore.toISOString()} - ${cert.notAfter.toISOString()})`,
      );
    }
    return cert;
  }

  #install(entry: Entry, cert: WorkloadCertificate): void {
    const previous = entry.certificate;
    entry.certificate = cert;
    entry.failure = undefined;
    entry.backoffMs = this.#initialBackoffMs;
    entry.retrying = false;
    this.#schedule(entry, cert.refreshAt());
    log.info('certificate issued', {
      identity: entry.identity,
      serial: cert.serialNumber,
      expiration: cert.notAfter.toISOString(),
    });
    for (const waiter of entry.waiters.splice(0)) waiter.resolve(cert);
    this.emit('rotated', entry.identity, cert, previous);
    this.#retryBackedOff();
  }

  /** The CA answered: identities waiting out a back-off grown while it failed are retried now. */
  #retryBackedOff(): void {
    const waiting = [...this.#entries.values()].filter((e) => e.retrying && !e.requesting && !e.forgotten);
    if (waiting.length === 0) return;
    log.info('certificate authority reachable again, retrying now', { identities: waiting.length });
    for (const entry of waiting) {
      entry.backoffMs = this.#initialBackoffMs;
      this.#schedule(entry, this.#now());
    }
  }

  #fail(entry: Entry, err: AmbitError): void {
    const now = this.#now();
    let delay = entry.backoffMs;
    entry.backoffMs = Math.min(entry.backoffMs * 2, this.#maxBackoffMs);
    entry.retrying = true;
    const serving = entry.certificate?.isValidAt(now) ? entry.certificate : undefined;
    if (serving) {
      // Keep serving the valid certificate, but retry no later than its expiry.
      delay = Math.max(0, Math.min(delay, serving.notAfter.getTime() - now));
    } else {
      entry.failure = err;
      for (const waiter of entry.waiters.splice(0)) waiter.reject(unavailable(entry.identity, err));
    }
    this.#schedule(entry, now + delay);
    log.warn('certificate request failed', {
      identity: entry.identity,
      code: err.code,
      error: err.message,
      retry_in_ms: delay,
    });
    this.emit('refresh-failed', entry.identity, err, delay);
  }

  #schedule(entry: Entry, dueAt: number): void {
    clearTimeout(entry.timer);
    entry.dueAt = dueAt;
    const delay = Math.min(Math.max(0, dueAt - this.#now()), MAX_TIMER_MS);
    entry.timer = setTimeout(() => {
      if (this.#now() < entry.dueAt) this.#schedule(entry, entry.dueAt);
      else void this.#request(entry);
    }, delay);
    entry.timer.unref();
  }
}

function positive(value: number, name: string): number {
  if (!(Number.isFinite(value) && value > 0)) {
    throw identityError('ERR_INVALID_OPTION', `${name} must be a positive number, got ${value}`);
  }
  return value;
}

function unavailable(identity: SpiffeId, cause: AmbitError): AmbitError {
  return identityError(
    'ERR_CERT_UNAVAILABLE',
    `no valid certificate for ${identity}: ${cause.message} (${cause.code})`,
    { cause },
  );
}

function closedError(): AmbitError {
  return identityError('ERR_CLOSED', 'the certificate manager is closed');
}
