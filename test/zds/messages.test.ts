import assert from 'node:assert/strict';
import { fstatSync, openSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  ack,
  decodeHello,
  decodeRequest,
  decodeResponse,
  encodeHello,
  encodeRequest,
  encodeResponse,
  nack,
  type WorkloadRequest,
  workloadUid,
} from '../../src/zds/messages.js';
import { readHelloPacket, readRequestPacket, readResponsePacket } from '../../src/zds/packet.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const ascii = (s: string) => Buffer.from(s, 'utf8').toString('hex');
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const uid = workloadUid('uid-0');
const info = { name: 'local', namespace: 'default', serviceAccount: 'default' };
// Add = 0a <n> [0a uid] [12 <k> [0a name][12 namespace][1a service_account]]
const ADD_HEX = `0a 22 0a 05 ${ascii('uid-0')} 12 19 0a 05 ${ascii('local')} 12 07 ${ascii('default')} 1a 07 ${ascii('default')}`;

describe('ZDS wire vectors (both directions)', () => {
  const requests: Array<[string, WorkloadRequest, string]> = [
    ['SnapshotSent', { kind: 'snapshotSent' }, '1a 00'],
    ['Keep', { kind: 'keep', uid: workloadUid('u1') }, `2a 04 0a 02 ${ascii('u1')}`],
    ['Del (uid is field 2)', { kind: 'del', uid: workloadUid('u1') }, `12 04 12 02 ${ascii('u1')}`],
    ['Add', { kind: 'add', uid, workloadInfo: info }, ADD_HEX],
  ];
  for (const [name, req, bytes] of requests) {
    it(`${name} request encodes to and decodes from ${bytes.slice(0, 20)}...`, () => {
      assert.equal(toHex(encodeRequest(req)), toHex(hex(bytes)));
      assert.deepEqual(decodeRequest(hex(bytes)), { ok: true, value: req });
    });
  }

  it('Hello(V1) = 08 01', () => {
    assert.equal(toHex(encodeHello({ version: 1 })), '0801');
    assert.deepEqual(decodeHello(hex('08 01')), { ok: true, value: { version: 1 } });
  });

  it('ACK = 0a 00 and NACK = 0a <n> 0a <m> text', () => {
    assert.equal(toHex(encodeResponse(ack())), '0a00');
    assert.deepEqual(decodeResponse(hex('0a 00')), { ok: true, value: { kind: 'ack', error: '' } });
    const nackHex = `0a 06 0a 04 ${ascii('boom')}`;
    assert.equal(toHex(encodeResponse(nack('boom'))), toHex(hex(nackHex)));
    assert.deepEqual(decodeResponse(hex(nackHex)), { ok: true, value: { kind: 'ack', error: 'boom' } });
  });

  it('an Add without workload info keeps it absent (the proxy must reject it)', () => {
    const bytes = encodeRequest({ kind: 'add', uid, workloadInfo: undefined });
    assert.equal(toHex(bytes), toHex(hex(`0a 07 0a 05 ${ascii('uid-0')}`)));
    assert.deepEqual(decodeRequest(bytes), {
      ok: true,
      value: { kind: 'add', uid, workloadInfo: undefined },
    });
  });
});

describe('ZDS decoding of unusual input', () => {
  it('skips unknown fields at every level (varint, fixed, length-delimited)', () => {
    // top-level field 9 (string), inside Add field 7 (varint), inside WorkloadInfo field 4 (fixed32)
    const bytes = hex(
      `4a 01 78 0a 21 0a 05 ${ascii('uid-0')} 38 96 01 12 15 0a 05 ${ascii('local')} 25 01 02 03 04 12 07 ${ascii('default')}`,
    );
    assert.deepEqual(decodeRequest(bytes), {
      ok: true,
      value: { kind: 'add', uid, workloadInfo: { name: 'local', namespace: 'default', serviceAccount: '' } },
    });
    assert.deepEqual(decodeHello(hex('08 01 10 05')), { ok: true, value: { version: 1 } });
    assert.deepEqual(decodeResponse(hex('0a 02 10 01')), { ok: true, value: { kind: 'ack', error: '' } });
  });

  it('returns an error value for every truncation of an Add', () => {
    const full = hex(ADD_HEX);
    for (let n = 0; n < full.length; n++) {
      const r = decodeRequest(full.subarray(0, n));
      assert.equal(r.ok, false, `prefix of ${n} bytes`);
      if (!r.ok) assert.equal(r.error.code, 'ZDS_MALFORMED');
    }
  });

  it('rejects wrong wire types, bad UTF-8, field 0 and an empty request', () => {
    for (const bad of ['0a 02 08 01', `2a 03 0a 01 ff`, '00 01', '', '12 02 10', '1a 02 08']) {
      const r = decodeRequest(hex(bad));
      assert.equal(r.ok, false, bad);
    }
    assert.equal(decodeHello(hex('0a 01 01')).ok, false);
    assert.equal(decodeResponse(hex('0a 03 0a 05 61')).ok, false);
  });

  it('takes the last oneof member when several are present', () => {
    assert.deepEqual(decodeRequest(hex(`1a 00 12 04 12 02 ${ascii('u1')}`)), {
      ok: true,
      value: { kind: 'del', uid: 'u1' },
    });
  });
});

describe('ZDS datagram rules (fds only with Add)', () => {
  const devNull = () => openSync('/dev/null', 'r');
  const isOpen = (fd: number) => {
    try {
      fstatSync(fd);
      return true;
    } catch {
      return false;
    }
  };

  it('hands the one fd of an Add to the caller', () => {
    const fd = devNull();
    const r = readRequestPacket(hex(ADD_HEX), [fd]);
    assert.ok(r.ok && 'netnsFd' in r.value && r.value.netnsFd === fd);
    assert.ok(isOpen(fd));
  });

  it('rejects an Add without fd, and closes fds on Keep/Del/SnapshotSent, on >1 fd and on garbage', () => {
    assert.equal(readRequestPacket(hex(ADD_HEX), []).ok, false);
    const cases: Array<[string, number]> = [
      ['1a 00', 1],
      [`12 04 12 02 ${ascii('u1')}`, 1],
      [ADD_HEX, 2],
      ['ff ff ff', 1],
    ];
    for (const [bytes, count] of cases) {
      const fds = Array.from({ length: count }, devNull);
      const r = readRequestPacket(hex(bytes), fds);
      assert.equal(r.ok, false, bytes);
      for (const fd of fds) assert.equal(isOpen(fd), false, `fd ${fd} closed after ${bytes}`);
    }
    const fd = devNull();
    assert.equal(readHelloPacket(hex('08 01'), [fd]).ok, false);
    assert.equal(isOpen(fd), false);
    const fd2 = devNull();
    assert.equal(readResponsePacket(hex('0a 00'), [fd2]).ok, false);
    assert.equal(isOpen(fd2), false);
    assert.equal(readResponsePacket(hex('10 01'), []).ok, false, 'a response without ack');
  });
});
