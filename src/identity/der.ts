/**
 * The little DER that ztunnel's identity path needs, by hand: reading the URI SANs of a certificate
 * and writing Istio's PKCS#10 request. An ASN.1 library would do it too, but the ones at hand cost
 * ztunnel 18-19 MiB of resident memory and ~0.1-0.4 s of start-up each (measured with
 * process.memoryUsage() around their import on this machine), a third of its idle footprint. The CA
 * side (local CA, serving certificates) keeps @peculiar/x509.
 */
import type { AmbitError } from '../errors.js';
import { identityError } from './errors.js';

/** A DER element: its tag and where its content lies in the buffer. */
interface Element {
  tag: number;
  start: number;
  end: number;
}

const SEQUENCE = 0x30;
const SET = 0x31;
const OID = 0x06;
const OCTET_STRING = 0x04;
const BOOLEAN = 0x01;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
/** [6] IMPLICIT IA5String: GeneralName's uniformResourceIdentifier. */
const URI_NAME = 0x86;
/** [3] EXPLICIT: a TBSCertificate's extensions. */
const EXTENSIONS = 0xa3;
/** 2.5.29.17 subjectAltName */
const SAN_OID = Buffer.from([0x55, 0x1d, 0x11]);
/** 1.2.840.113549.1.9.14 extensionRequest */
const EXTENSION_REQUEST_OID = Buffer.from([0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e]);
/** 1.2.840.10045.4.3.2 ecdsa-with-SHA256 */
const ECDSA_SHA256_OID = Buffer.from([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);

function malformed(why: string): AmbitError {
  return identityError('ERR_DER', `malformed DER: ${why}`);
}

/** The element at `pos`, which must end by `limit`. Only definite lengths (DER). */
function read(buf: Buffer, pos: number, limit: number): Element {
  if (pos + 2 > limit) throw malformed('truncated header');
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) throw malformed('multi-byte tags are not used here');
  let len = buf[pos + 1]!;
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw malformed('indefinite or oversized length');
    if (start + n > limit) throw malformed('truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > limit) throw malformed('element runs past its container');
  return { tag, start, end };
}

/** The elements directly inside `outer`. */
function children(buf: Buffer, outer: Element): Element[] {
  const out: Element[] = [];
  for (let pos = outer.start; pos < outer.end; ) {
    const e = read(buf, pos, outer.end);
    out.push(e);
    pos = e.end;
  }
  return out;
}

function expect(e: Element | undefined, tag: number, what: string): Element {
  if (!e || e.tag !== tag) throw malformed(`${what} expected`);
  return e;
}

/** URI SANs of a DER certificate, in order (none when it has no subjectAltName). */
export function certificateUriSans(der: Buffer): string[] {
  const cert = expect(read(der, 0, der.length), SEQUENCE, 'Certificate');
  const tbs = expect(children(der, cert)[0], SEQUENCE, 'TBSCertificate');
  const ext = children(der, tbs).find((e) => e.tag === EXTENSIONS);
  if (!ext) return [];
  const list = expect(children(der, ext)[0], SEQUENCE, 'Extensions');
  const out: string[] = [];
  for (const extension of children(der, list)) {
    const parts = children(der, expect(extension, SEQUENCE, 'Extension'));
    const oid = expect(parts[0], OID, 'extension id');
    if (!der.subarray(oid.start, oid.end).equals(SAN_OID)) continue;
    const value = expect(parts[parts.length - 1], OCTET_STRING, 'extension value');
    const names = expect(read(der, value.start, value.end), SEQUENCE, 'GeneralNames');
    for (const name of children(der, names)) {
      if (name.tag === URI_NAME) out.push(der.subarray(name.start, name.end).toString('latin1'));
    }
  }
  return out;
}

// --- writing ---------------------------------------------------------------------------------

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const n = body.length;
  let header: Buffer;
  if (n < 0x80) header = Buffer.from([tag, n]);
  else if (n < 0x100) header = Buffer.from([tag, 0x81, n]);
  else if (n < 0x10000) header = Buffer.from([tag, 0x82, n >> 8, n & 0xff]);
  else header = Buffer.from([tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([header, body]);
}

/**
 * The to-be-signed part of Istio's workload CSR: version 0, an empty subject, the key, and one
 * extensionRequest attribute holding a critical subjectAltName with the SPIFFE URI.
 */
export function csrInfo(spkiDer: Buffer, uri: string): Buffer {
  const san = tlv(SEQUENCE, tlv(URI_NAME, Buffer.from(uri, 'latin1')));
  const extension = tlv(
    SEQUENCE,
    tlv(OID, SAN_OID),
    tlv(BOOLEAN, Buffer.from([0xff])),
    tlv(OCTET_STRING, san),
  );
  const attribute = tlv(SEQUENCE, tlv(OID, EXTENSION_REQUEST_OID), tlv(SET, tlv(SEQUENCE, extension)));
  return tlv(
    SEQUENCE,
    tlv(INTEGER, Buffer.from([0])),
    tlv(SEQUENCE),
    spkiDer,
    // attributes: [0] IMPLICIT SET OF Attribute
    tlv(0xa0, attribute),
  );
}

/** CertificationRequest from its info and an ECDSA-SHA256 signature (DER Ecdsa-Sig-Value). */
export function csr(info: Buffer, signatureDer: Buffer): Buffer {
  return tlv(
    SEQUENCE,
    info,
    tlv(SEQUENCE, tlv(OID, ECDSA_SHA256_OID)),
    tlv(BIT_STRING, Buffer.from([0]), signatureDer),
  );
}
