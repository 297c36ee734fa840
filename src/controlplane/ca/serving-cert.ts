/**
 * The control plane's own TLS certificate, signed by the LocalCa root in the CA directory, so a client
 * that trusts the mesh root (`CA_ROOT_CA`, `XDS_ROOT_CA`) trusts port 15012, as with istiod.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT_CERT_FILE, ROOT_KEY_FILE } from '../../identity/local-ca.js';
import {
  certificatePem,
  crypto,
  ECDSA_SHA256,
  generateP256,
  privateKeyFromPem,
  privateKeyToPem,
  randomSerialHex,
  x509,
} from '../../identity/x509.js';

/** Names istiod answers to, plus loopback; the lab dials 127.0.0.1 or a node-reachable IP. */
export const DEFAULT_SERVING_DNS = ['istiod.istio-system.svc', 'istiod', 'localhost'];
const SERVING_VALIDITY_MS = 365 * 24 * 3600 * 1000;

export interface ServingCertificate {
  certPem: string;
  keyPem: string;
  rootPem: string;
}

export async function issueServingCertificate(
  caDir: string,
  names: { dns?: string[]; ips?: string[] } = {},
): Promise<ServingCertificate> {
  const [rootKeyPem, rootPem] = await Promise.all([
    readFile(join(caDir, ROOT_KEY_FILE), 'utf8'),
    readFile(join(caDir, ROOT_CERT_FILE), 'utf8'),
  ]);
  const root = new x509.X509Certificate(rootPem);
  const keys = await generateP256();
  const notBefore = new Date(Date.now() - 60_000);
  const sans = [
    ...(names.dns ?? DEFAULT_SERVING_DNS).map((value) => ({ type: 'dns' as const, value })),
    ...['127.0.0.1', '::1', ...(names.ips ?? [])].map((value) => ({ type: 'ip' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: 'CN=ambit-control-plane',
    issuer: root.subjectName,
    notBefore,
    notAfter: new Date(notBefore.getTime() + SERVING_VALIDITY_MS),
    publicKey: keys.publicKey,
    signingKey: await privateKeyFromPem(rootKeyPem),
    signingAlgorithm: ECDSA_SHA256,
    extensions: [
      new x509.SubjectAlternativeNameExtension(sans, false),
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      await x509.AuthorityKeyIdentifierExtension.create(root, false, crypto),
    ],
  });
  return { certPem: certificatePem(cert), keyPem: await privateKeyToPem(keys.privateKey), rootPem };
}
