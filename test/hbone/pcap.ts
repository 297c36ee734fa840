/** Test helper: reads a libpcap file (Ethernet) into IPv4/TCP segments and reassembles each direction. */
export interface Segment {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  syn: boolean;
  fin: boolean;
  rst: boolean;
  payload: Buffer;
}

export interface Capture {
  segments: Segment[];
  /** Frames that were not IPv4/TCP, by a short description. */
  other: string[];
}

export function parsePcap(file: Buffer): Capture {
  const le = file.readUInt32LE(0) === 0xa1b2c3d4;
  const u32 = (o: number) => (le ? file.readUInt32LE(o) : file.readUInt32BE(o));
  const segments: Segment[] = [];
  const other: string[] = [];
  let off = 24;
  while (off + 16 <= file.length) {
    const caplen = u32(off + 8);
    const frame = file.subarray(off + 16, off + 16 + caplen);
    off += 16 + caplen;
    const ethertype = frame.readUInt16BE(12);
    if (ethertype !== 0x0800) {
      other.push(`ethertype 0x${ethertype.toString(16)}`);
      continue;
    }
    const ip = frame.subarray(14);
    const ihl = (ip[0]! & 0x0f) * 4;
    const total = ip.readUInt16BE(2);
    if (ip[9] !== 6) {
      other.push(`ip proto ${ip[9]}`);
      continue;
    }
    const tcp = ip.subarray(ihl, total);
    const dataOff = (tcp[12]! >> 4) * 4;
    segments.push({
      src: ip.subarray(12, 16).join('.'),
      dst: ip.subarray(16, 20).join('.'),
      sport: tcp.readUInt16BE(0),
      dport: tcp.readUInt16BE(2),
      seq: tcp.readUInt32BE(4),
      syn: (tcp[13]! & 0x02) !== 0,
      fin: (tcp[13]! & 0x01) !== 0,
      rst: (tcp[13]! & 0x04) !== 0,
      payload: Buffer.from(tcp.subarray(dataOff)),
    });
  }
  return { segments, other };
}

/**
 * The byte stream of one direction of one flow, ordered by sequence number, duplicates dropped. A hole
 * (a segment the capture did not see) throws: concatenating around it would make a stream that never was.
 */
export function reassemble(segments: Segment[], sport: number, dport: number): Buffer {
  const flow = segments.filter((s) => s.sport === sport && s.dport === dport);
  const syn = flow.find((s) => s.syn);
  if (!syn) throw new Error(`no SYN for ${sport}->${dport}`);
  const isn = syn.seq + 1;
  const parts = new Map<number, Buffer>();
  for (const s of flow) if (s.payload.length > 0) parts.set((s.seq - isn) >>> 0, s.payload);
  const out: Buffer[] = [];
  let next = 0;
  for (const [at, data] of [...parts].sort((x, y) => x[0] - y[0])) {
    if (at + data.length <= next) continue;
    if (at > next)
      throw new Error(`${sport}->${dport}: the capture misses bytes ${next}..${at - 1} of the stream`);
    out.push(data.subarray(next - at));
    next = at + data.length;
  }
  return Buffer.concat(out);
}

/** Walks TLS records; returns their content types, or throws at the first byte that is not a record. */
export function tlsRecordTypes(stream: Buffer): number[] {
  const types: number[] = [];
  let off = 0;
  while (off < stream.length) {
    if (off + 5 > stream.length) throw new Error(`truncated TLS record header at ${off}`);
    const type = stream[off]!;
    const version = stream.readUInt16BE(off + 1);
    const len = stream.readUInt16BE(off + 3);
    if (![20, 21, 22, 23].includes(type) || (version !== 0x0303 && version !== 0x0301)) {
      throw new Error(`not a TLS record at ${off}: type ${type} version 0x${version.toString(16)}`);
    }
    types.push(type);
    off += 5 + len;
  }
  return types;
}
