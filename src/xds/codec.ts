/**
 * A small schema-driven protobuf codec over the protobuf wire reader/writer. The schemas in
 * messages.ts mirror proto/*.proto field for field; there is no code generator in the toolchain, and one
 * table per message keeps the numbers in a single readable place. Proto3 rules: defaults are not
 * written, unknown fields are skipped, repeated numbers are packed (both forms are read).
 */
import { BinaryReader, BinaryWriter, WireType } from '../protobuf/wire.js';
import { xdsError } from './errors.js';

export type Scalar = 'string' | 'bytes' | 'bool' | 'int32' | 'uint32' | 'int64' | 'double';

export type FieldType = Scalar | { message: () => MessageSchema };

export interface FieldSpec {
  no: number;
  name: string;
  type: FieldType;
  repeated?: boolean;
  /** map<string, type>. */
  map?: boolean;
  /** Member of this oneof: undefined when absent, written even when default, one member at a time. */
  oneof?: string;
}

export interface MessageSchema {
  name: string;
  fields: FieldSpec[];
}

/** Code of every decode error: the bytes are not the message they claim to be. */
export const PROTO_MALFORMED = 'ERR_PROTO_MALFORMED';
const MAX_DEPTH = 64;

type Obj = Record<string, unknown>;

function defaultOf(type: FieldType): unknown {
  switch (type) {
    case 'string':
      return '';
    case 'bytes':
      return new Uint8Array(0);
    case 'bool':
      return false;
    case 'int32':
    case 'uint32':
    case 'int64':
    case 'double':
      return 0;
    default:
      return undefined;
  }
}

function isDefault(type: FieldType, v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (typeof type === 'object') return false;
  if (type === 'bytes') return (v as Uint8Array).length === 0;
  return v === defaultOf(type);
}

function wireTypeOf(type: FieldType): WireType {
  if (typeof type === 'object' || type === 'string' || type === 'bytes') return WireType.LengthDelimited;
  return type === 'double' ? WireType.Bit64 : WireType.Varint;
}

function writeScalar(w: BinaryWriter, type: Scalar, v: unknown): void {
  switch (type) {
    case 'string':
      w.string(v as string);
      break;
    case 'bytes':
      w.bytes(v as Uint8Array);
      break;
    case 'bool':
      w.bool(v as boolean);
      break;
    case 'int32':
      w.int32(v as number);
      break;
    case 'uint32':
      w.uint32(v as number);
      break;
    case 'int64':
      w.int64(v as number);
      break;
    case 'double':
      w.double(v as number);
      break;
  }
}

function writeValue(w: BinaryWriter, field: FieldSpec, no: number, v: unknown): void {
  const { type } = field;
  if (typeof type === 'object') {
    w.tag(no, WireType.LengthDelimited).fork();
    writeMessage(w, type.message(), v as Obj);
    w.join();
    return;
  }
  w.tag(no, wireTypeOf(type));
  writeScalar(w, type, v);
}

function writeMessage(w: BinaryWriter, schema: MessageSchema, obj: Obj): void {
  for (const field of schema.fields) {
    const v = obj[field.name];
    if (v === undefined || v === null) continue;
    if (field.map) {
      for (const [key, value] of Object.entries(v as Obj)) {
        w.tag(field.no, WireType.LengthDelimited).fork();
        w.tag(1, WireType.LengthDelimited).string(key);
        writeValue(w, field, 2, value);
        w.join();
      }
    } else if (field.repeated) {
      const list = v as unknown[];
      if (list.length === 0) continue;
      if (wireTypeOf(field.type) === WireType.LengthDelimited) {
        for (const item of list) writeValue(w, field, field.no, item);
      } else {
        w.tag(field.no, WireType.LengthDelimited).fork();
        for (const item of list) writeScalar(w, field.type as Scalar, item);
        w.join();
      }
    } else if (field.oneof !== undefined || !isDefault(field.type, v)) {
      writeValue(w, field, field.no, v);
    }
  }
}

export function encode(schema: MessageSchema, obj: object): Uint8Array {
  const w = new BinaryWriter();
  writeMessage(w, schema, obj as Obj);
  return w.finish();
}

function readScalar(r: BinaryReader, type: Scalar): unknown {
  switch (type) {
    case 'string':
      return r.string();
    case 'bytes':
      return r.bytes();
    case 'bool':
      return r.bool();
    case 'int32':
      return r.int32();
    case 'uint32':
      return r.uint32();
    case 'int64':
      return Number(r.int64());
    case 'double':
      return r.double();
  }
}

function readValue(r: BinaryReader, field: FieldSpec, depth: number): unknown {
  const { type } = field;
  if (typeof type === 'object') return readMessage(r.bytes(), type.message(), depth + 1);
  return readScalar(r, type);
}

function emptyMessage(schema: MessageSchema): Obj {
  const obj: Obj = {};
  for (const f of schema.fields) {
    if (f.map) obj[f.name] = {};
    else if (f.repeated) obj[f.name] = [];
    else obj[f.name] = f.oneof !== undefined ? undefined : defaultOf(f.type);
  }
  return obj;
}

function readMapEntry(r: BinaryReader, field: FieldSpec, depth: number): [string, unknown] {
  const entry = new BinaryReader(r.bytes());
  let key = '';
  let value: unknown =
    typeof field.type === 'object' ? emptyMessage(field.type.message()) : defaultOf(field.type);
  while (entry.pos < entry.len) {
    const [no, wt] = entry.tag();
    if (no === 1 && wt === WireType.LengthDelimited) key = entry.string();
    else if (no === 2 && wt === wireTypeOf(field.type)) value = readValue(entry, field, depth);
    else entry.skip(wt);
  }
  return [key, value];
}

function readMessage(bytes: Uint8Array, schema: MessageSchema, depth: number): Obj {
  if (depth > MAX_DEPTH) throw new Error(`nesting deeper than ${MAX_DEPTH}`);
  const r = new BinaryReader(bytes);
  const obj = emptyMessage(schema);
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    const field = schema.fields.find((f) => f.no === no);
    if (!field) {
      r.skip(wt);
      continue;
    }
    if (field.map) {
      if (wt !== WireType.LengthDelimited) throw new Error(`${schema.name}.${field.name}: wrong wire type`);
      const [k, v] = readMapEntry(r, field, depth);
      (obj[field.name] as Obj)[k] = v;
      continue;
    }
    const expected = wireTypeOf(field.type);
    if (field.repeated && wt === WireType.LengthDelimited && expected !== WireType.LengthDelimited) {
      const packed = new BinaryReader(r.bytes());
      while (packed.pos < packed.len)
        (obj[field.name] as unknown[]).push(readScalar(packed, field.type as Scalar));
      continue;
    }
    if (wt !== expected) throw new Error(`${schema.name}.${field.name}: wrong wire type ${wt}`);
    const value = readValue(r, field, depth);
    if (field.repeated) (obj[field.name] as unknown[]).push(value);
    else {
      // A oneof holds one member: the last one on the wire wins, as in every protobuf runtime.
      if (field.oneof !== undefined)
        for (const f of schema.fields) if (f.oneof === field.oneof && f !== field) obj[f.name] = undefined;
      obj[field.name] = value;
    }
  }
  return obj;
}

/** Decodes `bytes` as `schema`; anything malformed throws ERR_PROTO_MALFORMED naming the message. */
export function decode<T>(schema: MessageSchema, bytes: Uint8Array): T {
  try {
    return readMessage(bytes, schema, 0) as T;
  } catch (err) {
    throw xdsError(PROTO_MALFORMED, `malformed ${schema.name}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
