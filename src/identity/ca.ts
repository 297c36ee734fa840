/**
 * What the certificate manager needs from a certificate authority: sign a workload CSR. Implemented by the
 * lab's local file-backed CA and, later, by the Istio CA gRPC client (`CreateCertificate`).
 */
import type { SpiffeId } from './spiffe.js';

export interface SignOptions {
  /** Requested validity in seconds (Istio's `validity_duration`); a CA may shorten it. */
  ttlSeconds: number;
  /** The identity the caller asks for (Istio's `ImpersonatedIdentity`); the CSR's URI SAN must equal it. */
  identity: SpiffeId;
}

export interface SignedCertificate {
  /** Leaf first, then intermediates, each one PEM certificate. */
  certChainPem: string[];
  /** The trust bundle: one or more concatenated root PEM certificates. */
  rootPem: string;
}

export interface CertificateAuthority {
  sign(csrPem: string, options: SignOptions): Promise<SignedCertificate>;
}
