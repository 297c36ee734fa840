/**
 * The certificate signing request a workload sends to the CA, shaped as Istio's: a fresh ECDSA P-256 key,
 * SHA-256 signature, empty subject and one critical subjectAltName extension holding the SPIFFE URI.
 */
import type { SpiffeId } from './spiffe.js';
import { ECDSA_SHA256, generateP256, privateKeyToPem, x509 } from './x509.js';

export interface WorkloadCsr {
  csrPem: string;
  /** PKCS#8 PEM; never log it. */
  privateKeyPem: string;
}

export async function createWorkloadCsr(identity: SpiffeId): Promise<WorkloadCsr> {
  const keys = await generateP256();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: ECDSA_SHA256,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: identity }], true)],
  });
  return { csrPem: csr.toString('pem'), privateKeyPem: await privateKeyToPem(keys.privateKey) };
}
