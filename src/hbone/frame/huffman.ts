/**
 * HPACK's Huffman code (RFC 7541 Appendix B). The code is canonical (codes of one length are consecutive
 * and ordered by symbol), so it is fully described by each symbol's code length; the codes are derived
 * from the lengths below at load time, and the tests check them against the RFC's examples.
 */

/** Symbols grouped by code length; 256 is EOS. */
const SYMBOLS_BY_LENGTH: ReadonlyArray<readonly [number, readonly (number | string)[]]> = [
  [5, ['0', '1', '2', 'a', 'c', 'e', 'i', 'o', 's', 't']],
  [6, [' ', '%', '-', '.', '/', '3', '4', '5', '6', '7', '8', '9', '=', 'A', '_', 'b', 'd', 'f', 'g', 'h']],
  [6, ['l', 'm', 'n', 'p', 'r', 'u']],
  [7, [':', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', 'P', 'Q', 'R', 'S', 'T']],
  [7, ['U', 'V', 'W', 'Y', 'j', 'k', 'q', 'v', 'w', 'x', 'y', 'z']],
  [8, ['&', '*', ',', ';', 'X', 'Z']],
  [10, ['!', '"', '(', ')', '?']],
  [11, ["'", '+', '|']],
  [12, ['#', '>']],
  [13, [0, '$', '@', '[', ']', '~']],
  [14, ['^', '}']],
  [15, ['<', '`', '{']],
  [19, ['\\', 195, 208]],
  [20, [128, 130, 131, 162, 184, 194, 224, 226]],
  [21, [153, 161, 167, 172, 176, 177, 179, 209, 216, 217, 227, 229, 230]],
  [22, [129, 132, 133, 134, 136, 146, 154, 156, 160, 163, 164, 169, 170, 173, 178, 181, 185, 186, 187, 189]],
  [22, [190, 196, 198, 228, 232, 233]],
  [23, [1, 135, 137, 138, 139, 140, 141, 143, 147, 149, 150, 151, 152, 155, 157, 158, 165, 166, 168, 174]],
  [23, [175, 180, 182, 183, 188, 191, 197, 231, 239]],
  [24, [9, 142, 144, 145, 148, 159, 171, 206, 215, 225, 236, 237]],
  [25, [199, 207, 234, 235]],
  [26, [192, 193, 200, 201, 202, 205, 210, 213, 218, 219, 238, 240, 242, 243, 255]],
  [27, [203, 204, 211, 212, 214, 221, 222, 223, 241, 244, 245, 246, 247, 248, 250, 251, 252, 253, 254]],
  [28, [2, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27, 28, 29, 30, 31]],
  [28, [127, 220, 249]],
  [30, [10, 13, 22, 256]],
];

export const EOS = 256;
const MAX_LENGTH = 30;

/** Per symbol: its code (right-aligned) and length in bits. */
export const CODES = new Uint32Array(257);
export const LENGTHS = new Uint8Array(257);
/** Canonical decoding tables: for each length, the first code, how many codes, where they start in SORTED. */
const FIRST_CODE = new Int32Array(MAX_LENGTH + 1);
const COUNT = new Int32Array(MAX_LENGTH + 1);
const OFFSET = new Int32Array(MAX_LENGTH + 1);
const SORTED = new Uint16Array(257);

{
  const ordered: Array<[number, number]> = [];
  for (const [length, symbols] of SYMBOLS_BY_LENGTH)
    for (const s of symbols) ordered.push([length, typeof s === 'string' ? s.charCodeAt(0) : s]);
  ordered.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let code = 0;
  let previous = ordered[0]![0];
  let index = 0;
  for (const [length, symbol] of ordered) {
    code <<= length - previous;
    previous = length;
    if (COUNT[length] === 0) {
      FIRST_CODE[length] = code;
      OFFSET[length] = index;
    }
    COUNT[length]!++;
    SORTED[index++] = symbol;
    CODES[symbol] = code >>> 0;
    LENGTHS[symbol] = length;
    code++;
  }
}

/** The Huffman-encoded length in bytes of `input`. */
export function huffmanLength(input: Uint8Array): number {
  let bits = 0;
  for (let i = 0; i < input.length; i++) bits += LENGTHS[input[i]!]!;
  return (bits + 7) >> 3;
}

export function huffmanEncode(input: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(huffmanLength(input));
  let acc = 0; // pending bits, right-aligned, fewer than 8 between symbols
  let accBits = 0;
  let o = 0;
  for (let i = 0; i < input.length; i++) {
    const symbol = input[i]!;
    let length = LENGTHS[symbol]!;
    const code = CODES[symbol]!;
    // Feed the code in pieces small enough that acc stays within 32 bits.
    while (length > 0) {
      const take = Math.min(length, 24);
      length -= take;
      acc = ((acc << take) | ((code >>> length) & ((1 << take) - 1))) >>> 0;
      accBits += take;
      while (accBits >= 8) {
        accBits -= 8;
        out[o++] = (acc >>> accBits) & 0xff;
      }
      acc &= (1 << accBits) - 1;
    }
  }
  // Pad with the most significant bits of EOS (all ones).
  if (accBits > 0) out[o++] = ((acc << (8 - accBits)) | ((1 << (8 - accBits)) - 1)) & 0xff;
  return out;
}

export class HuffmanError extends Error {}

/** Decodes a Huffman-coded string; bad padding or an EOS symbol is an error (RFC 7541 §5.2). */
export function huffmanDecode(input: Uint8Array): Buffer {
  const out: number[] = [];
  let code = 0;
  let length = 0;
  for (let i = 0; i < input.length; i++) {
    const byte = input[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      code = (code << 1) | ((byte >> bit) & 1);
      length++;
      const n = code - FIRST_CODE[length]!;
      if (COUNT[length]! > 0 && n >= 0 && n < COUNT[length]!) {
        const symbol = SORTED[OFFSET[length]! + n]!;
        if (symbol === EOS) throw new HuffmanError('Huffman: EOS in string');
        out.push(symbol);
        code = 0;
        length = 0;
      } else if (length >= MAX_LENGTH) throw new HuffmanError('Huffman: invalid code');
    }
  }
  // Left over: at most 7 bits, all ones (a prefix of EOS).
  if (length > 7) throw new HuffmanError('Huffman: padding longer than 7 bits');
  if (code !== (1 << length) - 1) throw new HuffmanError('Huffman: padding is not EOS');
  return Buffer.from(out);
}
