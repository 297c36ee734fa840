import assert from 'node:assert/strict';
import { test } from 'node:test';
import { reassemble, type Segment } from './pcap.js';

function seg(seq: number, payload: string, syn = false): Segment {
  return {
    src: '10.0.0.1',
    dst: '10.0.0.2',
    sport: 40000,
    dport: 15008,
    seq,
    syn,
    fin: false,
    rst: false,
    payload: Buffer.from(payload),
  };
}

test('reassemble orders segments and drops retransmitted bytes', () => {
  const stream = reassemble(
    [seg(99, '', true), seg(105, 'world'), seg(100, 'hell'), seg(100, 'hello'), seg(103, 'lowo')],
    40000,
    15008,
  );
  assert.equal(stream.toString(), 'helloworld');
});

test('reassemble refuses a stream with a hole instead of splicing around it (a capture that dropped packets)', () => {
  assert.throws(
    () => reassemble([seg(99, '', true), seg(100, 'abc'), seg(110, 'xyz')], 40000, 15008),
    /misses bytes 3\.\.9/,
  );
});
