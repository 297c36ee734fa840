/**
 * Reads what tcpdump wrote (classic pcap, Ethernet) into TCP segments and tells whether each
 * captured byte stream is a chain of TLS records: the demo's proof that pod traffic left the pod
 * encrypted. Only what the demo needs: IPv4/IPv6 over Ethernet, TCP, no IPv6 extension headers.
 */
import type { AmbitError } from '../errors.js';
import { demoError } from './errors.js';

const LINKTYPE_ETHERNET = 1;
const TCP = 6;
const SYN = 0x02;

export interface TcpSegment {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  seq: number;
  syn: boolean;
  payload: Buffer;
}

function badCapture(message: string): AmbitError {
  return demoError('DEMO_BAD_CAPTURE', `the packet capture is not readable: ${message}`);
}

/** The compressed form (RFC 5952, as tcpdump and `ip` print it; the URL serializer compresses). */
function ipv6Text(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/** The TCP segments of a pcap file; other frames (ARP, UDP, ...) are counted, not returned. */
export function readPcap(file: Buffer): { segments: TcpSegment[]; otherFrames: number } {
  if (file.length < 24) throw badCapture(`${file.length} bytes, shorter than a pcap header`);
  const magic = file.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const be = file.readUInt32BE(0) === 0xa1b2c3d4 || file.readUInt32BE(0) === 0xa1b23c4d;
  if (!le && !be) throw badCapture(`unknown magic 0x${magic.toString(16)}`);
  const u32 = (off: number) => (le ? file.readUInt32LE(off) : file.readUInt32BE(off));
  const linktype = u32(20);
  if (linktype !== LINKTYPE_ETHERNET) throw badCapture(`link type ${linktype}, expected Ethernet (1)`);
  const segments: TcpSegment[] = [];
  let otherFrames = 0;
  for (let off = 24; off + 16 <= file.length; ) {
    const captured = u32(off + 8);
    const frame = file.subarray(off + 16, off + 16 + captured);
    off += 16 + captured;
    const segment = tcpOf(frame);
    if (segment) segments.push(segment);
    else otherFrames++;
  }
  return { segments, otherFrames };
}

function tcpOf(frame: Buffer): TcpSegment | undefined {
  if (frame.length < 14) return undefined;
  const ethertype = frame.readUInt16BE(12);
  let ip: Buffer;
  let src: string;
  let dst: string;
  if (ethertype === 0x0800) {
    const v4 = frame.subarray(14);
    if (v4.length < 20 || v4[9] !== TCP) return undefined;
    const headerLen = (v4[0]! & 0x0f) * 4;
    ip = v4.subarray(headerLen, Math.min(v4.length, v4.readUInt16BE(2)));
    src = [...v4.subarray(12, 16)].join('.');
    dst = [...v4.subarray(16, 20)].join('.');
  } else if (ethertype === 0x86dd) {
    const v6 = frame.subarray(14);
    if (v6.length < 40 || v6[6] !== TCP) return undefined;
    ip = v6.subarray(40, 40 + v6.readUInt16BE(4));
    src = ipv6Text(v6.subarray(8, 24));
    dst = ipv6Text(v6.subarray(24, 40));
  } else {
    return undefined;
  }
  if (ip.length < 20) return undefined;
  const dataOffset = (ip[12]! >> 4) * 4;
  return {
    src,
    dst,
    srcPort: ip.readUInt16BE(0),
    dstPort: ip.readUInt16BE(2),
    seq: ip.readUInt32BE(4),
    syn: (ip[13]! & SYN) !== 0,
    payload: ip.subarray(dataOffset),
  };
}

export const TLS_CONTENT_TYPES: Record<number, string> = {
  20: 'change_cipher_spec',
  21: 'alert',
  22: 'handshake',
  23: 'application_data',
};
// A TLS record carries at most 2^14 bytes of plaintext plus 2048 of expansion.
const MAX_RECORD = 16_384 + 2048;

/** One direction of a TCP connection, reassembled from the captured segments. */
export interface TcpStream {
  from: string;
  to: string;
  toPort: number;
  fromPort: number;
  bytes: number;
  /** The capture holds the connection's SYN, so the bytes start at the stream's beginning. */
  fromStart: boolean;
  /** TLS records by content type, or undefined when the bytes are not a chain of TLS records. */
  tls: Record<string, number> | undefined;
  data: Buffer;
}

export function streamsOf(segments: readonly TcpSegment[]): TcpStream[] {
  const byKey = new Map<string, { first: TcpSegment; syn: boolean; parts: Map<number, Buffer> }>();
  for (const s of segments) {
    const key = `${s.src}:${s.srcPort}>${s.dst}:${s.dstPort}`;
    let stream = byKey.get(key);
    if (!stream) {
      stream = { first: s, syn: false, parts: new Map() };
      byKey.set(key, stream);
    }
    if (s.syn) stream.syn = true;
    // Retransmissions carry the same sequence number: keep one copy.
    if (s.payload.length > 0 && !stream.parts.has(s.seq)) stream.parts.set(s.seq, s.payload);
  }
  return [...byKey.values()].map(({ first, syn, parts }) => {
    const base = first.seq;
    const ordered = [...parts.entries()].sort(([a], [b]) => ((a - base) >>> 0) - ((b - base) >>> 0));
    const data = Buffer.concat(ordered.map(([, p]) => p));
    return {
      from: first.src,
      fromPort: first.srcPort,
      to: first.dst,
      toPort: first.dstPort,
      bytes: data.length,
      fromStart: syn,
      tls: data.length === 0 ? {} : tlsRecords(data, syn),
      data,
    };
  });
}

function walk(data: Buffer, start: number): Record<string, number> | undefined {
  const counts: Record<string, number> = {};
  let off = start;
  while (off + 5 <= data.length) {
    const type = TLS_CONTENT_TYPES[data[off]!];
    const major = data[off + 1];
    const minor = data[off + 2]!;
    const length = data.readUInt16BE(off + 3);
    if (!type || major !== 3 || minor < 1 || minor > 4 || length > MAX_RECORD) return undefined;
    counts[type] = (counts[type] ?? 0) + 1;
    off += 5 + length;
  }
  return Object.keys(counts).length > 0 ? counts : undefined;
}

/**
 * The record chain from the first byte, or, for a connection already open when the capture
 * started (pooled HBONE), from the first offset at which a consistent chain runs to the end.
 */
export function tlsRecords(data: Buffer, fromStart: boolean): Record<string, number> | undefined {
  if (fromStart) return walk(data, 0);
  const limit = Math.min(data.length - 5, MAX_RECORD + 5);
  for (let start = 0; start <= limit; start++) {
    const counts = walk(data, start);
    if (counts) return counts;
  }
  return undefined;
}
