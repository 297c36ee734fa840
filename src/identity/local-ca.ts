/**
 * A file-backed certificate authority for the lab: a root key and self-signed root certificate created on
 * first use in a private directory (0700, files 0600) and reused afterwards. It signs workload CSRs that
 * carry exactly one URI SAN, a SPIFFE id of its trust domain equal to the requested identity.
 */
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorCode } from '../errors.js';
import type { CertificateAuthority, SignedCertificate, SignOptions } from './ca.js';
import { identityError } from './errors.js';
import { parseSpiffeId, parseTrustDomain, type TrustDomain, trustDomainOf } from './spiffe.js';
import {
  type CryptoKey,
  certificatePem,
  crypto,
  ECDSA_SHA256,
  type EcKeyAlgorithm,
  generateP256,
  privateKeyFromPem,
  privateKeyToPem,
  randomSerialHex,
  SAN_OID,
  uriSans,
  x509,
} from './x509.js';

export const ROOT_KEY_FILE = 'root-key.pem';
export const ROOT_CERT_FILE = 'root-cert.pem';
const ROOT_VALIDITY_SECONDS = 10 * 365 * 24 * 3600;
const DEFAULT_MAX_TTL_SECONDS = 7 * 24 * 3600;
const MAX_CSR_PEM_LENGTH = 64 * 1024;

export interface LocalCaOptions {
  trustDomain: string;
  /** Longest leaf validity handed out; longer requests are shortened to it. */
  maxTtlSeconds?: number;
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number;
}

export class LocalCa implements CertificateAuthority {
  readonly trustDomain: TrustDomain;
  readonly rootPem: string;
  readonly #rootCert: x509.X509Certificate;
  readonly #rootKey: CryptoKey;
  readonly #maxTtlSeconds: number;
  readonly #now: () => number;

  private constructor(
    trustDomain: TrustDomain,
    rootCert: x509.X509Certificate,
    rootKey: CryptoKey,
    options: LocalCaOptions,
  ) {
    this.trustDomain = trustDomain;
    this.#rootCert = rootCert;
    this.rootPem = certificatePem(rootCert);
    this.#rootKey = rootKey;
    this.#maxTtlSeconds = options.maxTtlSeconds ?? DEFAULT_MAX_TTL_SECONDS;
    this.#now = options.now ?? Date.now;
  }

  /** Opens the CA in `dir`, creating the directory, root key and root certificate when they do not exist. */
  static async open(dir: string, options: LocalCaOptions): Promise<LocalCa> {
    const trustDomain = parseTrustDomain(options.trustDomain);
    if (
      options.maxTtlSeconds !== undefined &&
      !(Number.isInteger(options.maxTtlSeconds) && options.maxTtlSeconds > 0)
    ) {
      throw identityError(
        'ERR_CA_TTL',
        `maxTtlSeconds must be a positive integer, got ${options.maxTtlSeconds}`,
      );
    }
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700).catch(async (err: NodeJS.ErrnoException) => {
      // A directory someone else owns cannot be narrowed: a Kubernetes emptyDir is root's, with the
      // pod's fsGroup (the chart's istiod runs as 1337). The key and certificate are still 0600.
      if (err.code !== 'EPERM' || (await stat(dir)).uid === process.getuid?.()) throw err;
    });
    const keyPath = join(dir, ROOT_KEY_FILE);
    const certPath = join(dir, ROOT_CERT_FILE);
    const [keyPem, certPem] = await Promise.all([readOptional(keyPath), readOptional(certPath)]);
    if (keyPem === undefined && certPem === undefined) {
      const created = await createRoot(trustDomain, options.now ?? Date.now);
      // 'wx' so two processes racing on first use never overwrite each other's key.
      await writeFile(keyPath, created.keyPem, { mode: 0o600, flag: 'wx' });
      await writeFile(certPath, certificatePem(created.cert), { mode: 0o600, flag: 'wx' });
      return new LocalCa(trustDomain, created.cert, created.key, options);
    }
    if (keyPem === undefined || certPem === undefined) {
      throw identityError(
        'ERR_CA_FILES',
        `CA directory ${dir} has ${keyPem === undefined ? ROOT_CERT_FILE : ROOT_KEY_FILE} but not ` +
          `${keyPem === undefined ? ROOT_KEY_FILE : ROOT_CERT_FILE}; restore the missing file or remove both`,
      );
    }
    let cert: x509.X509Certificate;
    let key: CryptoKey;
    try {
      cert = new x509.X509Certificate(certPem);
      key = await privateKeyFromPem(keyPem);
    } catch (err) {
      throw identityError('ERR_CA_FILES', `cannot read the CA root in ${dir}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const stored = cert.subjectName.getField('O')[0];
    if (stored !== trustDomain) {
      throw identityError(
        'ERR_CA_TRUST_DOMAIN',
        `CA root in ${dir} belongs to trust domain ${JSON.stringify(stored)}, not ${JSON.stringify(trustDomain)}`,
      );
    }
    return new LocalCa(trustDomain, cert, key, options);
  }

  async sign(csrPem: string, options: SignOptions): Promise<SignedCertificate> {
    const ttl = this.#checkTtl(options.ttlSeconds);
    const csr = await parseCsr(csrPem);
    const identity = this.#checkSans(csr, options);
    const notBefore = new Date(Math.floor(this.#now() / 1000) * 1000);
    const notAfter = new Date(notBefore.getTime() + ttl * 1000);
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerialHex(),
      issuer: this.#rootCert.subjectName,
      notBefore,
      notAfter,
      publicKey: csr.publicKey,
      signingKey: this.#rootKey,
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: identity }], true),
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([
          x509.ExtendedKeyUsage.serverAuth,
          x509.ExtendedKeyUsage.clientAuth,
        ]),
        await x509.AuthorityKeyIdentifierExtension.create(this.#rootCert, false, crypto),
      ],
    });
    return { certChainPem: [certificatePem(leaf)], rootPem: this.rootPem };
  }

  #checkTtl(ttlSeconds: number): number {
    if (!(Number.isInteger(ttlSeconds) && ttlSeconds > 0)) {
      throw identityError(
        'ERR_CA_TTL',
        `requested TTL must be a positive whole number of seconds, got ${ttlSeconds}`,
      );
    }
    return Math.min(ttlSeconds, this.#maxTtlSeconds);
  }

  #checkSans(csr: x509.Pkcs10CertificateRequest, options: SignOptions): string {
    const sanExtensions = csr.extensions.filter((ext) => ext.type === SAN_OID);
    const uris = uriSans(sanExtensions);
    const allNames = sanExtensions.flatMap(
      (ext) => new x509.SubjectAlternativeNameExtension(ext.rawData).names.items,
    );
    if (uris.length !== 1 || allNames.length !== 1) {
      throw identityError(
        'ERR_CSR_SAN',
        `the CSR must carry exactly one subject alternative name, a SPIFFE URI; it has ${allNames.length} ` +
          `(${uris.length} URI)`,
      );
    }
    let identity: ReturnType<typeof parseSpiffeId>;
    try {
      identity = parseSpiffeId(uris[0]!);
    } catch (err) {
      throw identityError(
        'ERR_CSR_SAN',
        `the CSR's URI SAN is not a workload SPIFFE id: ${(err as Error).message}`,
      );
    }
    if (trustDomainOf(identity) !== this.trustDomain) {
      throw identityError(
        'ERR_TRUST_DOMAIN',
        `the CSR asks for ${identity}, outside this CA's trust domain ${JSON.stringify(this.trustDomain)}`,
      );
    }
    if (identity !== options.identity) {
      throw identityError(
        'ERR_IDENTITY_MISMATCH',
        `the CSR asks for ${identity} but the request is for ${options.identity}`,
      );
    }
    return identity;
  }
}

async function parseCsr(csrPem: string): Promise<x509.Pkcs10CertificateRequest> {
  if (typeof csrPem !== 'string' || !csrPem.includes('-----BEGIN CERTIFICATE REQUEST-----')) {
    throw identityError('ERR_CSR_INVALID', 'the CSR is not a PEM "CERTIFICATE REQUEST" block');
  }
  if (csrPem.length > MAX_CSR_PEM_LENGTH) {
    throw identityError('ERR_CSR_INVALID', `the CSR is larger than ${MAX_CSR_PEM_LENGTH} bytes`);
  }
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
    if (!(await csr.verify(crypto))) throw new Error('signature does not verify');
  } catch (err) {
    throw identityError(
      'ERR_CSR_INVALID',
      `the CSR cannot be parsed or verified: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const alg = csr.publicKey.algorithm as EcKeyAlgorithm;
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') {
    throw identityError(
      'ERR_CSR_KEY',
      `the CSR key must be ECDSA P-256, got ${alg.name} ${alg.namedCurve ?? ''}`,
    );
  }
  return csr;
}

async function createRoot(
  trustDomain: TrustDomain,
  now: () => number,
): Promise<{ cert: x509.X509Certificate; key: CryptoKey; keyPem: string }> {
  const keys = await generateP256();
  const notBefore = new Date(Math.floor(now() / 1000) * 1000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name: [{ O: [trustDomain] }, { CN: ['ambit lab root CA'] }],
    notBefore,
    notAfter: new Date(notBefore.getTime() + ROOT_VALIDITY_SECONDS * 1000),
    keys,
    signingAlgorithm: ECDSA_SHA256,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
    ],
  });
  return { cert, key: keys.privateKey, keyPem: await privateKeyToPem(keys.privateKey) };
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined;
    throw identityError('ERR_CA_FILES', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}
