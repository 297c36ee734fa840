/** Test helpers: temporary CA directories and certificates issued by real local CAs. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AmbitError } from '../../src/errors.js';
import type { CertificateAuthority, SignedCertificate, SignOptions } from '../../src/identity/ca.js';

export async function tempDir(): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), 'ambit-identity-'));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** Wraps a real CA; while `failing` is set, every request fails as an unreachable CA would. */
export class SwitchableCa implements CertificateAuthority {
  failing = false;
  requests = 0;
  /** The identity of every request, in order. */
  readonly identities: string[] = [];

  constructor(private readonly inner: CertificateAuthority) {}

  async sign(csrPem: string, options: SignOptions): Promise<SignedCertificate> {
    this.requests++;
    this.identities.push(options.identity);
    if (this.failing) throw new AmbitError('ERR_CA_UNREACHABLE', 'test CA is down');
    return this.inner.sign(csrPem, options);
  }
}
