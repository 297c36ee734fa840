/**
 * Shared X.509 plumbing for identity: the key algorithm Istio uses (ECDSA P-256 / SHA-256) over Node's
 * webcrypto, PEM helpers and reading URI SANs out of certificates and CSRs.
 */
import { webcrypto } from 'node:crypto';
// @peculiar/x509 resolves its providers through tsyringe, which needs the Reflect metadata polyfill first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
export type EcKeyAlgorithm = webcrypto.EcKeyAlgorithm;

x509.cryptoProvider.set(webcrypto);

export const crypto = webcrypto;
export const EC_P256: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
export const ECDSA_SHA256: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
export const SAN_OID = '2.5.29.17';

export function generateP256(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
}

export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

export async function privateKeyFromPem(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return crypto.subtle.importKey('pkcs8', der, EC_P256, false, ['sign']);
}

/** PEM text of a certificate, newline-terminated so bundles can be made by plain concatenation. */
export function certificatePem(cert: x509.X509Certificate): string {
  return `${cert.toString('pem')}\n`;
}

export { splitPemBundle } from './pem.js';

/** URI SANs of a certificate or CSR extension list, in order. */
export function uriSans(extensions: readonly x509.Extension[]): string[] {
  const out: string[] = [];
  for (const ext of extensions) {
    if (ext.type !== SAN_OID) continue;
    const san = new x509.SubjectAlternativeNameExtension(ext.rawData);
    for (const name of san.names.items) if (name.type === 'url') out.push(name.value);
  }
  return out;
}

/** Random positive 20-byte serial number (RFC 5280 allows at most 20 octets). */
export function randomSerialHex(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(20));
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return Buffer.from(bytes).toString('hex');
}

export { x509 };
