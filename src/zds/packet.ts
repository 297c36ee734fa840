/**
 * Datagram-level rules of ZDS (one message per SEQPACKET datagram, fds only with AddWorkload).
 * Received fds belong to the caller of these functions: on every error they are closed here, on
 * success the one fd of an Add is handed back and everything else is closed.
 */
import { closeSync } from 'node:fs';
import { zdsError } from './errors.js';
import {
  type Decoded,
  decodeHello,
  decodeRequest,
  decodeResponse,
  type WorkloadRequest,
  type WorkloadResponse,
  ZDS_MALFORMED,
  type ZdsHello,
} from './messages.js';

/** Upstream ztunnel reads with a 1024-byte buffer; bigger datagrams are truncated, hence errors. */
export const ZDS_MAX_MESSAGE = 1024;

export function closeFds(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      closeSync(fd);
    } catch {}
  }
}

function fail<T>(fds: readonly number[], message: string): Decoded<T> {
  closeFds(fds);
  return { ok: false, error: zdsError(ZDS_MALFORMED, message) };
}

/** An agent->proxy datagram: a request, plus the netns fd (now owned by the caller) for an Add. */
export type RequestPacket =
  | { request: Exclude<WorkloadRequest, { kind: 'add' }> }
  | {
      request: Extract<WorkloadRequest, { kind: 'add' }>;
      netnsFd: number;
    };

export function readRequestPacket(data: Uint8Array, fds: readonly number[]): Decoded<RequestPacket> {
  if (fds.length > 1) return fail(fds, `expected 1 fd, got ${fds.length}`);
  const decoded = decodeRequest(data);
  if (!decoded.ok) return fail(fds, decoded.error.message);
  const request = decoded.value;
  if (request.kind === 'add') {
    const fd = fds[0];
    if (fd === undefined) return fail(fds, 'no control message: AddWorkload needs the netns fd');
    return { ok: true, value: { request, netnsFd: fd } };
  }
  if (fds.length > 0) return fail(fds, `unexpected control message: ${request.kind} carries no fd`);
  return { ok: true, value: { request } };
}

/** The proxy's first datagram. */
export function readHelloPacket(data: Uint8Array, fds: readonly number[]): Decoded<ZdsHello> {
  if (fds.length > 0) return fail(fds, 'unexpected control message on ZdsHello');
  return decodeHello(data);
}

/** A proxy->agent datagram after the hello: must be an Ack. */
export function readResponsePacket(
  data: Uint8Array,
  fds: readonly number[],
): Decoded<Extract<WorkloadResponse, { kind: 'ack' }>> {
  if (fds.length > 0) return fail(fds, 'unexpected control message on WorkloadResponse');
  const decoded = decodeResponse(data);
  if (!decoded.ok) return decoded;
  if (decoded.value.kind !== 'ack') return fail([], 'WorkloadResponse without an ack');
  return { ok: true, value: decoded.value };
}
