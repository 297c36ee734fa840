/**
 * The certificate signing request a workload sends to the CA, shaped as Istio's: a fresh ECDSA P-256 key,
 * SHA-256 signature, empty subject and one critical subjectAltName extension holding the SPIFFE URI.
 * Built with node:crypto and a few lines of DER (see der.ts for why not an ASN.1 library).
 */
import { generateKeyPair, sign } from 'node:crypto';
import { promisify } from 'node:util';
import { csr, csrInfo } from './der.js';
import { pemEncode } from './pem.js';
import type { SpiffeId } from './spiffe.js';

const generateEcKeyPair = promisify(generateKeyPair);

export interface WorkloadCsr {
  csrPem: string;
  /** PKCS#8 PEM; never log it. */
  privateKeyPem: string;
  /** DER SubjectPublicKeyInfo of the key: the issued certificate must carry this one. */
  publicKeySpki: Buffer;
}

export async function createWorkloadCsr(identity: SpiffeId): Promise<WorkloadCsr> {
  const { publicKey, privateKey } = await generateEcKeyPair('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const info = csrInfo(spki, identity);
  // ECDSA signatures from node:crypto are DER (Ecdsa-Sig-Value) unless asked otherwise.
  const signature = sign('sha256', info, privateKey);
  return {
    csrPem: pemEncode(csr(info, signature), 'CERTIFICATE REQUEST'),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeySpki: spki,
  };
}
