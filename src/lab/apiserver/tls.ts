/**
 * The serving certificate. kubectl (client-go) never sends a bearer token over plain HTTP, so the
 * server speaks HTTPS: a CA and a serving certificate made once per state file and kept in it; the
 * kubeconfig carries the CA.
 */
import {
  certificatePem,
  crypto,
  ECDSA_SHA256,
  generateP256,
  privateKeyToPem,
  randomSerialHex,
  x509,
} from '../../identity/x509.js';

export interface ServingTls {
  caPem: string;
  certPem: string;
  keyPem: string;
}

const TEN_YEARS_MS = 10 * 365 * 24 * 3600 * 1000;

/** Names a client may dial: loopback, and the in-cluster names of the `kubernetes` service. */
const SANS: { type: 'ip' | 'dns'; value: string }[] = [
  { type: 'ip', value: '127.0.0.1' },
  { type: 'ip', value: '::1' },
  { type: 'dns', value: 'localhost' },
  { type: 'dns', value: 'kubernetes' },
  { type: 'dns', value: 'kubernetes.default' },
  { type: 'dns', value: 'kubernetes.default.svc' },
  { type: 'dns', value: 'kubernetes.default.svc.cluster.local' },
];

export async function newServingTls(extraIps: string[] = []): Promise<ServingTls> {
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + TEN_YEARS_MS);
  const caKeys = await generateP256();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name: [{ O: ['ambit lab'] }, { CN: ['ambit lab API server CA'] }],
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: ECDSA_SHA256,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
    ],
  });
  const keys = await generateP256();
  const names = [...SANS, ...extraIps.map((value) => ({ type: 'ip' as const, value }))];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: 'CN=kube-apiserver',
    issuer: ca.subjectName,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: ECDSA_SHA256,
    extensions: [
      new x509.SubjectAlternativeNameExtension(names, false),
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      await x509.AuthorityKeyIdentifierExtension.create(ca, false, crypto),
    ],
  });
  return {
    caPem: certificatePem(ca),
    certPem: certificatePem(cert),
    keyPem: await privateKeyToPem(keys.privateKey),
  };
}
