/**
 * One issued workload certificate with its private key. The key is reachable only through
 * `privateKeyPem()`; JSON and util.inspect show the public summary so a dump or log line never leaks it.
 */
import { X509Certificate } from 'node:crypto';
import { inspect } from 'node:util';
import type { SpiffeId } from './spiffe.js';

export interface CertificateSummary {
  identity: SpiffeId;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
  certChainPem: readonly string[];
  rootPem: string;
}

export class WorkloadCertificate {
  readonly identity: SpiffeId;
  /** Leaf first, then intermediates. */
  readonly certChainPem: readonly string[];
  readonly rootPem: string;
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly #privateKeyPem: string;

  constructor(identity: SpiffeId, certChainPem: readonly string[], rootPem: string, privateKeyPem: string) {
    const leaf = new X509Certificate(certChainPem[0]!);
    this.identity = identity;
    this.certChainPem = Object.freeze([...certChainPem]);
    this.rootPem = rootPem;
    this.serialNumber = serialHex(leaf);
    this.notBefore = new Date(leaf.validFrom);
    this.notAfter = new Date(leaf.validTo);
    this.#privateKeyPem = privateKeyPem;
  }

  /** PKCS#8 PEM of the leaf's key, for building TLS contexts only. */
  privateKeyPem(): string {
    return this.#privateKeyPem;
  }

  isValidAt(ms: number): boolean {
    return ms >= this.notBefore.getTime() && ms < this.notAfter.getTime();
  }

  /** Istio refreshes at half-life: not_before + validity / 2. */
  refreshAt(): number {
    const start = this.notBefore.getTime();
    return start + (this.notAfter.getTime() - start) / 2;
  }

  toJSON(): CertificateSummary {
    return {
      identity: this.identity,
      serialNumber: this.serialNumber,
      notBefore: this.notBefore.toISOString(),
      notAfter: this.notAfter.toISOString(),
      certChainPem: this.certChainPem,
      rootPem: this.rootPem,
    };
  }

  [inspect.custom](): string {
    return `WorkloadCertificate ${inspect(this.toJSON())}`;
  }
}

/** The serial number as lower-case hex, as the rest of ambit (and its config dump) shows it. */
export function serialHex(cert: X509Certificate): string {
  return cert.serialNumber.toLowerCase();
}
