/**
 * The few protobuf bodies the lab API server reads: kubectl sends its authorization and
 * authentication questions (`auth can-i`, `auth whoami`) as Kubernetes protobuf, not JSON. A body is
 * the `k8s\0` magic and a runtime.Unknown {typeMeta=1, raw=2}; raw is the object's message
 * (k8s.io/api/authorization/v1/generated.proto). Decoded here into the JSON shape the handler reads.
 */
import { BinaryReader, WireType } from '../../protobuf/wire.js';
import { badRequest } from './status.js';

const MAGIC = Buffer.from('k8s\0', 'latin1');

type Fields = Map<number, Uint8Array[]>;

/** Length-delimited fields by number (the only kind these messages have besides skipped ones). */
function fields(bytes: Uint8Array): Fields {
  const out: Fields = new Map();
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, type] = r.tag();
    if (type === WireType.LengthDelimited) {
      const list = out.get(no) ?? [];
      list.push(r.bytes());
      out.set(no, list);
    } else r.skip(type);
  }
  return out;
}

const text = (f: Fields, no: number): string => {
  const v = f.get(no)?.[0];
  return v ? Buffer.from(v).toString('utf8') : '';
};

function strings(f: Fields, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  names.forEach((name, i) => {
    const v = text(f, i + 1);
    if (v !== '') out[name] = v;
  });
  return out;
}

const RESOURCE_ATTRIBUTES = [
  'namespace',
  'verb',
  'group',
  'version',
  'resource',
  'subresource',
  'name',
] as const;
const NON_RESOURCE_ATTRIBUTES = ['path', 'verb'] as const;

/** A SelfSubjectAccessReview or SelfSubjectReview in Kubernetes protobuf, as JSON. */
export function decodeReview(body: Buffer): Record<string, unknown> {
  try {
    if (!body.subarray(0, 4).equals(MAGIC)) throw new Error('missing the k8s protobuf magic');
    const unknown = fields(body.subarray(4));
    const raw = unknown.get(2)?.[0] ?? new Uint8Array();
    const obj = fields(raw);
    const specBytes = obj.get(2)?.[0];
    if (!specBytes) return {};
    const spec = fields(specBytes);
    const ra = spec.get(1)?.[0];
    const na = spec.get(2)?.[0];
    return {
      spec: {
        ...(ra ? { resourceAttributes: strings(fields(ra), RESOURCE_ATTRIBUTES) } : {}),
        ...(na ? { nonResourceAttributes: strings(fields(na), NON_RESOURCE_ATTRIBUTES) } : {}),
      },
    };
  } catch (err) {
    throw badRequest(`the protobuf request body could not be decoded: ${(err as Error).message}`);
  }
}
