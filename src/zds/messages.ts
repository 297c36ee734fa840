/**
 * ZDS messages (proto/zds.proto, package istio.workload.zds) as discriminated unions, with codecs
 * built on the protobuf wire reader/writer. Encoding is byte-identical to Istio's (proto3:
 * default values are not written). Decoding skips unknown fields and returns malformed input as an
 * error value; nothing thrown by the wire reader escapes.
 */
import type { AmbitError } from '../errors.js';
import { BinaryReader, BinaryWriter, WireType } from '../protobuf/wire.js';
import { zdsError } from './errors.js';

/** A pod's ZDS key: the pod UID for the real agent, any opaque string for test tools. */
export type WorkloadUid = string & { readonly __brand: 'WorkloadUid' };
export const workloadUid = (uid: string): WorkloadUid => uid as WorkloadUid;

export const ZDS_VERSION_V1 = 1;

export interface ZdsHello {
  /** `Version` enum: 0 NOT_USED, 1 V1; unknown values are kept as numbers. */
  version: number;
}

export interface WorkloadInfo {
  name: string;
  namespace: string;
  serviceAccount: string;
}

export type WorkloadRequest =
  | { kind: 'add'; uid: WorkloadUid; workloadInfo: WorkloadInfo | undefined }
  | { kind: 'keep'; uid: WorkloadUid }
  | { kind: 'del'; uid: WorkloadUid }
  | { kind: 'snapshotSent' };

/** `WorkloadResponse{ack: Ack{error}}`: an empty error is an ACK, anything else a NACK. */
export type WorkloadResponse = { kind: 'ack'; error: string } | { kind: 'none' };

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: AmbitError };

/** Code of every decode error: the bytes are not the message they should be. */
export const ZDS_MALFORMED = 'ZDS_MALFORMED';

// Field numbers, from proto/zds.proto.
const HELLO_VERSION = 1;
const INFO_NAME = 1;
const INFO_NAMESPACE = 2;
const INFO_SERVICE_ACCOUNT = 3;
const ADD_UID = 1;
const ADD_INFO = 2;
const KEEP_UID = 1;
const DEL_UID = 2;
const REQ_ADD = 1;
const REQ_DEL = 2;
const REQ_SNAPSHOT_SENT = 3;
const REQ_KEEP = 5;
const ACK_ERROR = 1;
const RESP_ACK = 1;

function writeString(w: BinaryWriter, field: number, value: string): void {
  if (value !== '') w.tag(field, WireType.LengthDelimited).string(value);
}

export function encodeHello(hello: ZdsHello): Uint8Array {
  const w = new BinaryWriter();
  if (hello.version !== 0) w.tag(HELLO_VERSION, WireType.Varint).int32(hello.version);
  return w.finish();
}

function writeInfo(w: BinaryWriter, info: WorkloadInfo): void {
  writeString(w, INFO_NAME, info.name);
  writeString(w, INFO_NAMESPACE, info.namespace);
  writeString(w, INFO_SERVICE_ACCOUNT, info.serviceAccount);
}

export function encodeRequest(req: WorkloadRequest): Uint8Array {
  const w = new BinaryWriter();
  switch (req.kind) {
    case 'add':
      w.tag(REQ_ADD, WireType.LengthDelimited).fork();
      writeString(w, ADD_UID, req.uid);
      // An empty WorkloadInfo is still present (the proxy requires it), so it is always written.
      if (req.workloadInfo) {
        w.tag(ADD_INFO, WireType.LengthDelimited).fork();
        writeInfo(w, req.workloadInfo);
        w.join();
      }
      w.join();
      break;
    case 'keep':
      w.tag(REQ_KEEP, WireType.LengthDelimited).fork();
      writeString(w, KEEP_UID, req.uid);
      w.join();
      break;
    case 'del':
      w.tag(REQ_DEL, WireType.LengthDelimited).fork();
      writeString(w, DEL_UID, req.uid);
      w.join();
      break;
    case 'snapshotSent':
      w.tag(REQ_SNAPSHOT_SENT, WireType.LengthDelimited).fork().join();
      break;
  }
  return w.finish();
}

export function encodeResponse(resp: WorkloadResponse): Uint8Array {
  const w = new BinaryWriter();
  if (resp.kind === 'ack') {
    w.tag(RESP_ACK, WireType.LengthDelimited).fork();
    writeString(w, ACK_ERROR, resp.error);
    w.join();
  }
  return w.finish();
}

export const ack = (): WorkloadResponse => ({ kind: 'ack', error: '' });
export const nack = (error: string): WorkloadResponse => ({ kind: 'ack', error: error || 'unknown error' });

/** Thrown only inside this module and turned into an error value by `decode`. */
class Malformed extends Error {}

/** Calls `onField` for every field of the message in `bytes`; unknown ones are skipped by returning false. */
function readFields(
  bytes: Uint8Array,
  onField: (field: number, wt: WireType, r: BinaryReader) => boolean,
): void {
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [field, wt] = r.tag();
    if (field === 0) throw new Malformed('field number 0');
    if (!onField(field, wt, r)) r.skip(wt);
  }
  if (r.pos !== r.len) throw new Malformed('message runs past its end');
}

function expectWire(field: number, wt: WireType, want: WireType): void {
  if (wt !== want) throw new Malformed(`field ${field} has wire type ${wt}, expected ${want}`);
}

/** Strict UTF-8, as proto3 requires for `string` fields. */
function readString(field: number, wt: WireType, r: BinaryReader): string {
  expectWire(field, wt, WireType.LengthDelimited);
  return r.string(true);
}

function readSub(field: number, wt: WireType, r: BinaryReader): Uint8Array {
  expectWire(field, wt, WireType.LengthDelimited);
  return r.bytes();
}

function decode<T>(what: string, bytes: Uint8Array, parse: (bytes: Uint8Array) => T): Decoded<T> {
  try {
    return { ok: true, value: parse(bytes) };
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    return { ok: false, error: zdsError(ZDS_MALFORMED, `malformed ${what}: ${detail}`) };
  }
}

export function decodeHello(bytes: Uint8Array): Decoded<ZdsHello> {
  return decode('ZdsHello', bytes, (b) => {
    const hello: ZdsHello = { version: 0 };
    readFields(b, (field, wt, r) => {
      if (field !== HELLO_VERSION) return false;
      expectWire(field, wt, WireType.Varint);
      hello.version = r.int32();
      return true;
    });
    return hello;
  });
}

function parseInfo(bytes: Uint8Array, into: WorkloadInfo): WorkloadInfo {
  readFields(bytes, (field, wt, r) => {
    if (field === INFO_NAME) into.name = readString(field, wt, r);
    else if (field === INFO_NAMESPACE) into.namespace = readString(field, wt, r);
    else if (field === INFO_SERVICE_ACCOUNT) into.serviceAccount = readString(field, wt, r);
    else return false;
    return true;
  });
  return into;
}

function parseStringField(bytes: Uint8Array, uidField: number, uid: string): string {
  let out = uid;
  readFields(bytes, (field, wt, r) => {
    if (field !== uidField) return false;
    out = readString(field, wt, r);
    return true;
  });
  return out;
}

/**
 * A WorkloadRequest. When a oneof member appears more than once the last one wins, merged with an
 * earlier occurrence of the same member, as protobuf parsers do. No payload at all is malformed.
 */
export function decodeRequest(bytes: Uint8Array): Decoded<WorkloadRequest> {
  return decode('WorkloadRequest', bytes, (b) => {
    let req: WorkloadRequest | undefined;
    readFields(b, (field, wt, r) => {
      switch (field) {
        case REQ_ADD: {
          const prev = req?.kind === 'add' ? req : undefined;
          let uid: string = prev?.uid ?? '';
          let info = prev?.workloadInfo;
          readFields(readSub(field, wt, r), (f, w, rr) => {
            if (f === ADD_UID) uid = readString(f, w, rr);
            else if (f === ADD_INFO)
              info = parseInfo(readSub(f, w, rr), info ?? { name: '', namespace: '', serviceAccount: '' });
            else return false;
            return true;
          });
          req = { kind: 'add', uid: workloadUid(uid), workloadInfo: info };
          return true;
        }
        case REQ_KEEP: {
          const prev = req?.kind === 'keep' ? req.uid : '';
          req = { kind: 'keep', uid: workloadUid(parseStringField(readSub(field, wt, r), KEEP_UID, prev)) };
          return true;
        }
        case REQ_DEL: {
          const prev = req?.kind === 'del' ? req.uid : '';
          req = { kind: 'del', uid: workloadUid(parseStringField(readSub(field, wt, r), DEL_UID, prev)) };
          return true;
        }
        case REQ_SNAPSHOT_SENT:
          readFields(readSub(field, wt, r), () => false);
          req = { kind: 'snapshotSent' };
          return true;
        default:
          return false;
      }
    });
    if (!req) throw new Malformed('no payload');
    return req;
  });
}

export function decodeResponse(bytes: Uint8Array): Decoded<WorkloadResponse> {
  return decode('WorkloadResponse', bytes, (b) => {
    let resp: WorkloadResponse = { kind: 'none' };
    readFields(b, (field, wt, r) => {
      if (field !== RESP_ACK) return false;
      const prev = resp.kind === 'ack' ? resp.error : '';
      resp = { kind: 'ack', error: parseStringField(readSub(field, wt, r), ACK_ERROR, prev) };
      return true;
    });
    return resp;
  });
}

/** One-line description for logs. */
export function describeRequest(req: WorkloadRequest): string {
  return req.kind === 'snapshotSent' ? 'SnapshotSent' : `${req.kind}(${req.uid})`;
}
