/**
 * HPACK (RFC 7541) for HBONE's few headers. The decoder is complete (static table, Huffman, a dynamic
 * table bounded by the size this side announced) because peers such as node:http2 and Istio's ztunnel
 * index and Huffman-code what they send. The encoder only uses the static table and literals without
 * indexing: a CONNECT carries a handful of headers once per stream, so compression would buy little and
 * would keep state that the decoder at the other end must mirror.
 */
import { HuffmanError, huffmanDecode } from './huffman.js';

export type HeaderList = Array<[name: string, value: string]>;

export const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

/** Per RFC 7541 §4.1: an entry's size is its name and value length plus 32. */
const ENTRY_OVERHEAD = 32;

export class HpackError extends Error {}

export class HpackDecoder {
  private readonly entries: Array<readonly [string, string]> = []; // newest first
  private size = 0;
  /** The limit the peer's encoder may raise its table to (our SETTINGS_HEADER_TABLE_SIZE). */
  private maxAllowed: number;
  private capacity: number;

  constructor(maxTableSize: number) {
    this.maxAllowed = maxTableSize;
    this.capacity = maxTableSize;
  }

  get tableSize(): number {
    return this.size;
  }

  get tableCapacity(): number {
    return this.capacity;
  }

  /**
   * Decodes one complete header block. Headers past `maxListSize` (RFC 9113 list size: name + value + 32
   * each) are not kept but the block is still decoded to the end so that the dynamic table stays in step
   * with the peer's encoder; `tooLarge` says so.
   */
  decode(
    block: Uint8Array,
    maxListSize = Number.POSITIVE_INFINITY,
  ): { headers: HeaderList; tooLarge: boolean } {
    const headers: HeaderList = [];
    let listSize = 0;
    let tooLarge = false;
    let pos = 0;
    let sawField = false;
    const emit = (name: string, value: string) => {
      listSize += name.length + value.length + ENTRY_OVERHEAD;
      if (listSize > maxListSize) tooLarge = true;
      else headers.push([name, value]);
    };
    while (pos < block.length) {
      const b = block[pos]!;
      if (b & 0x80) {
        // Indexed field.
        const [index, next] = readInteger(block, pos, 7);
        pos = next;
        const [name, value] = this.lookup(index);
        emit(name, value);
        sawField = true;
      } else if (b & 0x40) {
        // Literal with incremental indexing.
        const r = this.readLiteral(block, pos, 6);
        pos = r.next;
        emit(r.name, r.value);
        this.add(r.name, r.value);
        sawField = true;
      } else if (b & 0x20) {
        // Dynamic table size update: only at the start of a block (RFC 7541 §4.2).
        if (sawField) throw new HpackError('HPACK: table size update after a field');
        const [size, next] = readInteger(block, pos, 5);
        pos = next;
        if (size > this.maxAllowed) throw new HpackError('HPACK: table size update above the limit');
        this.capacity = size;
        this.evict(0);
      } else {
        // Literal without indexing (0000) or never indexed (0001).
        const r = this.readLiteral(block, pos, 4);
        pos = r.next;
        emit(r.name, r.value);
        sawField = true;
      }
    }
    return { headers, tooLarge };
  }

  private lookup(index: number): readonly [string, string] {
    if (index === 0) throw new HpackError('HPACK: index 0');
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1]!;
    const entry = this.entries[index - STATIC_TABLE.length - 1];
    if (!entry) throw new HpackError(`HPACK: index ${index} beyond the tables`);
    return entry;
  }

  private readLiteral(block: Uint8Array, pos: number, prefix: number) {
    const [index, afterIndex] = readInteger(block, pos, prefix);
    let name: string;
    let next = afterIndex;
    if (index === 0) {
      const r = readString(block, next);
      name = r.value;
      next = r.next;
    } else name = this.lookup(index)[0];
    const v = readString(block, next);
    return { name, value: v.value, next: v.next };
  }

  private add(name: string, value: string): void {
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    this.evict(entrySize);
    // An entry larger than the table empties it and is not added (RFC 7541 §4.4).
    if (entrySize > this.capacity) return;
    this.entries.unshift([name, value]);
    this.size += entrySize;
  }

  /** Evicts oldest entries until `room` more octets fit. */
  private evict(room: number): void {
    while (this.size + room > this.capacity && this.entries.length > 0) {
      const [n, v] = this.entries.pop()!;
      this.size -= n.length + v.length + ENTRY_OVERHEAD;
    }
  }
}

function readInteger(block: Uint8Array, pos: number, prefix: number): [number, number] {
  const mask = (1 << prefix) - 1;
  if (pos >= block.length) throw new HpackError('HPACK: truncated integer');
  let value = block[pos]! & mask;
  pos++;
  if (value < mask) return [value, pos];
  let shift = 0;
  for (;;) {
    if (pos >= block.length) throw new HpackError('HPACK: truncated integer');
    const b = block[pos++]!;
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) break;
    // Nothing in HBONE comes near 2^28; longer encodings are hostile.
    if (shift > 28) throw new HpackError('HPACK: integer too large');
  }
  return [value, pos];
}

function readString(block: Uint8Array, pos: number): { value: string; next: number } {
  if (pos >= block.length) throw new HpackError('HPACK: truncated string');
  const huffman = (block[pos]! & 0x80) !== 0;
  const [length, start] = readInteger(block, pos, 7);
  const end = start + length;
  if (end > block.length) throw new HpackError('HPACK: string beyond the block');
  const raw = block.subarray(start, end);
  if (!huffman)
    return { value: Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString('latin1'), next: end };
  try {
    return { value: huffmanDecode(raw).toString('latin1'), next: end };
  } catch (err) {
    if (err instanceof HuffmanError) throw new HpackError(err.message);
    throw err;
  }
}

/** Static-table name (and where possible name+value) indexes, for the encoder. */
const STATIC_NAME = new Map<string, number>();
const STATIC_PAIR = new Map<string, number>();
STATIC_TABLE.forEach(([name, value], i) => {
  if (!STATIC_NAME.has(name)) STATIC_NAME.set(name, i + 1);
  if (value !== '') STATIC_PAIR.set(`${name}\0${value}`, i + 1);
});

/** Encodes a header list with the static table and literals without indexing; stateless. */
export function encodeHeaders(headers: HeaderList): Buffer {
  const parts: number[] = [];
  for (const [name, value] of headers) {
    const pair = STATIC_PAIR.get(`${name}\0${value}`);
    if (pair !== undefined) {
      writeInteger(parts, pair, 7, 0x80);
      continue;
    }
    const nameIndex = STATIC_NAME.get(name);
    if (nameIndex !== undefined) writeInteger(parts, nameIndex, 4, 0x00);
    else {
      parts.push(0x00);
      writeString(parts, name);
    }
    writeString(parts, value);
  }
  return Buffer.from(parts);
}

function writeInteger(out: number[], value: number, prefix: number, firstBits: number): void {
  const mask = (1 << prefix) - 1;
  if (value < mask) {
    out.push(firstBits | value);
    return;
  }
  out.push(firstBits | mask);
  value -= mask;
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
}

function writeString(out: number[], value: string): void {
  const bytes = Buffer.from(value, 'latin1');
  writeInteger(out, bytes.length, 7, 0x00);
  for (const b of bytes) out.push(b);
}
