import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeHeaders, type HeaderList, HpackDecoder, HpackError } from '../../../src/hbone/frame/hpack.js';
import { huffmanDecode, huffmanEncode } from '../../../src/hbone/frame/huffman.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('Huffman: RFC 7541 C.4.1 www.example.com both ways, and every byte value round-trips', () => {
  assert.equal(huffmanEncode(Buffer.from('www.example.com')).toString('hex'), 'f1e3c2e5f23a6ba0ab90f4ff');
  assert.equal(huffmanDecode(hex('f1e3c2e5f23a6ba0ab90f4ff')).toString(), 'www.example.com');
  assert.equal(huffmanEncode(Buffer.from('no-cache')).toString('hex'), 'a8eb10649cbf');
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  assert.deepEqual(huffmanDecode(huffmanEncode(all)), all);
});

test('Huffman: padding longer than 7 bits, padding not all ones, and EOS are errors', () => {
  assert.throws(() => huffmanDecode(hex('f1e3c2e5f23a6ba0ab90f4ffff')));
  assert.throws(() => huffmanDecode(hex('00'))); // '0' (00000) then 000: padding not EOS
  assert.throws(() => huffmanDecode(hex('ffffffff')));
});

test('HPACK C.2: literal with indexing, without indexing, never indexed, indexed', () => {
  const d = new HpackDecoder(4096);
  assert.deepEqual(d.decode(hex('400a637573746f6d2d6b65790d637573746f6d2d686561646572')).headers, [
    ['custom-key', 'custom-header'],
  ]);
  assert.equal(d.tableSize, 55);
  const d2 = new HpackDecoder(4096);
  assert.deepEqual(d2.decode(hex('040c2f73616d706c652f70617468')).headers, [[':path', '/sample/path']]);
  assert.equal(d2.tableSize, 0);
  assert.deepEqual(d2.decode(hex('100870617373776f726406736563726574')).headers, [['password', 'secret']]);
  assert.equal(d2.tableSize, 0);
  assert.deepEqual(d2.decode(hex('82')).headers, [[':method', 'GET']]);
});

const REQ1: HeaderList = [
  [':method', 'GET'],
  [':scheme', 'http'],
  [':path', '/'],
  [':authority', 'www.example.com'],
];
const REQ2: HeaderList = [...REQ1, ['cache-control', 'no-cache']];
const REQ3: HeaderList = [
  [':method', 'GET'],
  [':scheme', 'https'],
  [':path', '/index.html'],
  [':authority', 'www.example.com'],
  ['custom-key', 'custom-value'],
];

test('HPACK C.3: requests without Huffman share one dynamic table', () => {
  const d = new HpackDecoder(4096);
  assert.deepEqual(d.decode(hex('828684410f7777772e6578616d706c652e636f6d')).headers, REQ1);
  assert.equal(d.tableSize, 57);
  assert.deepEqual(d.decode(hex('828684be58086e6f2d6361636865')).headers, REQ2);
  assert.equal(d.tableSize, 110);
  assert.deepEqual(d.decode(hex('828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565')).headers, REQ3);
  assert.equal(d.tableSize, 164);
});

test('HPACK C.4: requests with Huffman', () => {
  const d = new HpackDecoder(4096);
  assert.deepEqual(d.decode(hex('828684418cf1e3c2e5f23a6ba0ab90f4ff')).headers, REQ1);
  assert.deepEqual(d.decode(hex('828684be5886a8eb10649cbf')).headers, REQ2);
  assert.deepEqual(d.decode(hex('828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf')).headers, REQ3);
  assert.equal(d.tableSize, 164);
});

const DATE1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const DATE2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const LOC = 'https://www.example.com';
const RESP1: HeaderList = [
  [':status', '302'],
  ['cache-control', 'private'],
  ['date', DATE1],
  ['location', LOC],
];
const RESP2: HeaderList = [[':status', '307'], ...RESP1.slice(1)];
const RESP3: HeaderList = [
  [':status', '200'],
  ['cache-control', 'private'],
  ['date', DATE2],
  ['location', LOC],
  ['content-encoding', 'gzip'],
  ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'],
];

test('HPACK C.5: responses evict from a 256-octet table', () => {
  const d = new HpackDecoder(256);
  assert.deepEqual(
    d.decode(
      hex(
        '4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d54' +
          '6e1768747470733a2f2f7777772e6578616d706c652e636f6d',
      ),
    ).headers,
    RESP1,
  );
  assert.equal(d.tableSize, 222);
  assert.deepEqual(d.decode(hex('4803333037c1c0bf')).headers, RESP2);
  assert.equal(d.tableSize, 222);
  assert.deepEqual(
    d.decode(
      hex(
        '88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738' +
          '666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f4955' +
          '3b206d61782d6167653d333630303b2076657273696f6e3d31',
      ),
    ).headers,
    RESP3,
  );
  assert.equal(d.tableSize, 215);
});

test('HPACK C.6: responses with Huffman', () => {
  const d = new HpackDecoder(256);
  assert.deepEqual(
    d.decode(
      hex(
        '488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3',
      ),
    ).headers,
    RESP1,
  );
  assert.deepEqual(d.decode(hex('4883640effc1c0bf')).headers, RESP2);
  assert.deepEqual(
    d.decode(
      hex(
        '88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007',
      ),
    ).headers,
    RESP3,
  );
  assert.equal(d.tableSize, 215);
});

test('HPACK: table size update above the announced limit, bad index and truncation are errors', () => {
  assert.throws(() => new HpackDecoder(256).decode(hex('3fe11f')), HpackError); // update to 4096 > 256
  assert.throws(() => new HpackDecoder(4096).decode(hex('be')), HpackError); // index 62, empty table
  assert.throws(() => new HpackDecoder(4096).decode(hex('80')), HpackError); // index 0
  assert.throws(() => new HpackDecoder(4096).decode(hex('400a6375')), HpackError);
  assert.throws(() => new HpackDecoder(4096).decode(hex('823f00')), HpackError); // update after a field
});

test('HPACK: a header list beyond the limit is flagged but the table still follows the encoder', () => {
  const d = new HpackDecoder(4096);
  const r = d.decode(hex('400a637573746f6d2d6b65790d637573746f6d2d686561646572'), 40);
  assert.equal(r.tooLarge, true);
  assert.deepEqual(r.headers, []);
  assert.equal(d.tableSize, 55);
  assert.deepEqual(d.decode(hex('be')).headers, [['custom-key', 'custom-header']]);
});

test('HPACK encoder: static pairs indexed, names from the static table, decodable', () => {
  const list: HeaderList = [
    [':method', 'CONNECT'],
    [':authority', '10.0.0.2:8080'],
    [':status', '200'],
    ['forwarded', 'for="10.0.0.1:40000"'],
    ['x-long', 'v'.repeat(300)],
  ];
  const block = encodeHeaders(list);
  assert.equal(block[block.indexOf(0x88)], 0x88); // :status 200 is static index 8
  assert.deepEqual(new HpackDecoder(4096).decode(block).headers, list);
});
