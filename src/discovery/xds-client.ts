/**
 * ztunnel's workload discovery client (reference §5.1): one delta ADS stream subscribing (wildcard) to
 * `istio.workload.Address` and `istio.security.Authorization`, filling a WorkloadStore. Each response is
 * applied whole or NACKed whole (error_detail, logged) so a bad resource never half-applies. On a
 * broken stream it reconnects with back-off (10 ms doubling to 15 s) and sends the versions it holds as
 * `initial_resource_versions`, so the server sends only the difference. Ready once every type is ACKed.
 * A connection that failed (UNAVAILABLE) is replaced, so each reconnect dials on this client's schedule
 * rather than on a gRPC library's reconnect back-off (grpc-js's fails calls at once for up to 120 s).
 */
import { EventEmitter } from 'node:events';
import { AmbitError, errorMessage } from '../errors.js';
import { logger } from '../runtime/log.js';
import { type ControlPlaneChannelConfig, controlPlaneChannel } from '../xds/channel.js';
import { decode } from '../xds/codec.js';
import { type GrpcChannel, GrpcStatus, type GrpcStream } from '../xds/grpc-client.js';
import {
  ADDRESS_TYPE_URL,
  AddressSchema,
  AUTHORIZATION_TYPE_URL,
  AuthorizationSchema,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
  type PbAddress,
  type PbAuthorization,
  stringStruct,
} from '../xds/messages.js';
import { AGGREGATED_DISCOVERY_SERVICE } from '../xds/services.js';
import { discoveryError } from './errors.js';
import type { StoreDelta, WorkloadStore } from './store.js';
import { fromPbAuthorization, fromPbService, fromPbWorkload } from './xds-convert.js';

const log = logger('ztunnel::xds::client');
const TYPES = [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL] as const;
type XdsType = (typeof TYPES)[number];
const MAX_MESSAGE_BYTES = 200 * 1024 * 1024;

export interface XdsNode {
  /** `ztunnel~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`. */
  id: string;
  /** NAME, NAMESPACE, INSTANCE_IPS, NODE_NAME, ... */
  metadata?: Record<string, string>;
}

export interface XdsClientOptions extends ControlPlaneChannelConfig {
  store: WorkloadStore;
  node: XdsNode;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

export interface XdsClientEvents {
  ready: [];
  ack: [type: string, nonce: string];
  nack: [type: string, nonce: string, error: AmbitError];
  disconnected: [error: string];
}

type Stream = GrpcStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

export class XdsClient extends EventEmitter<XdsClientEvents> {
  readonly #o: XdsClientOptions;
  #channel: GrpcChannel;
  /** What this client holds, per type: resource name -> version. */
  readonly #known = new Map<XdsType, Map<string, string>>(TYPES.map((t) => [t, new Map()]));
  readonly #acked = new Set<XdsType>();
  #stream: Stream | undefined;
  #timer: NodeJS.Timeout | undefined;
  #backoffMs: number;
  #closed = false;
  #ready = false;
  /** Resolves once every subscribed type has been ACKed once. */
  readonly ready: Promise<void>;

  constructor(options: XdsClientOptions) {
    super();
    this.#o = options;
    this.#backoffMs = options.initialBackoffMs ?? 10;
    this.#channel = this.#newChannel();
    this.ready = new Promise((resolve) => this.once('ready', resolve));
  }

  #newChannel(): GrpcChannel {
    return controlPlaneChannel(this.#o, { maxReceiveMessageBytes: MAX_MESSAGE_BYTES });
  }

  get isReady(): boolean {
    return this.#ready;
  }

  /** Versions held per type URL (for dumps and tests). */
  knownVersions(type: string): ReadonlyMap<string, string> {
    return this.#known.get(type as XdsType) ?? new Map();
  }

  start(): void {
    if (!this.#stream && !this.#closed) this.#connect();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#stream?.cancel();
    this.#stream = undefined;
    this.#channel.close();
  }

  #connect(): void {
    const m = AGGREGATED_DISCOVERY_SERVICE.DeltaAggregatedResources;
    const stream: Stream = this.#channel.bidi(m.path, m.requestSerialize, m.responseDeserialize);
    this.#stream = stream;
    stream.on('data', (res: DeltaDiscoveryResponse) => this.#onResponse(stream, res));
    stream.on('error', (err) => {
      if (err.code !== GrpcStatus.CANCELLED || !this.#closed) this.#lost(stream, errorMessage(err), err.code);
    });
    stream.on('end', () => this.#lost(stream, 'stream ended by the server'));
    const node = { id: this.#o.node.id, cluster: '', metadata: stringStruct(this.#o.node.metadata ?? {}) };
    for (const type of TYPES) {
      stream.write({
        node,
        typeUrl: type,
        resourceNamesSubscribe: [],
        resourceNamesUnsubscribe: [],
        initialResourceVersions: Object.fromEntries(this.#known.get(type)!),
        responseNonce: '',
      });
    }
    log.info('connecting', { address: this.#o.address, known: this.#known.get(ADDRESS_TYPE_URL)!.size });
  }

  #lost(stream: Stream, reason: string, code?: number): void {
    if (this.#stream !== stream) return;
    this.#stream = undefined;
    if (this.#closed) return;
    if (code === GrpcStatus.UNAVAILABLE) {
      this.#channel.close();
      this.#channel = this.#newChannel();
    }
    const delay = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, this.#o.maxBackoffMs ?? 15_000);
    log.warn('xds stream lost, reconnecting', {
      address: this.#o.address,
      error: reason,
      retry_in_ms: delay,
    });
    this.emit('disconnected', reason);
    this.#timer = setTimeout(() => this.#connect(), delay);
  }

  #onResponse(stream: Stream, res: DeltaDiscoveryResponse): void {
    this.#backoffMs = this.#o.initialBackoffMs ?? 10;
    const type = res.typeUrl as XdsType;
    let delta: StoreDelta;
    try {
      if (!TYPES.includes(type)) throw discoveryError('ERR_XDS_RESOURCE', `unsubscribed type ${res.typeUrl}`);
      delta = toDelta(type, res);
    } catch (err) {
      const error =
        err instanceof AmbitError
          ? err
          : discoveryError('ERR_XDS_RESOURCE', errorMessage(err), { cause: err });
      log.warn('rejecting xds response (NACK)', {
        type: res.typeUrl,
        nonce: res.nonce,
        error: error.message,
      });
      this.#send(stream, {
        typeUrl: res.typeUrl,
        responseNonce: res.nonce,
        errorDetail: { code: GrpcStatus.INVALID_ARGUMENT, message: error.message, details: [] },
      });
      this.emit('nack', res.typeUrl, res.nonce, error);
      return;
    }
    this.#o.store.apply(delta);
    const known = this.#known.get(type)!;
    for (const r of res.resources) known.set(r.name, r.version);
    for (const name of res.removedResources) known.delete(name);
    this.#send(stream, { typeUrl: type, responseNonce: res.nonce });
    log.debug('applied xds response', {
      type,
      nonce: res.nonce,
      resources: res.resources.length,
      removed: res.removedResources.length,
    });
    this.emit('ack', type, res.nonce);
    this.#acked.add(type);
    if (!this.#ready && TYPES.every((t) => this.#acked.has(t))) {
      this.#ready = true;
      log.info('xds ready', { address: this.#o.address });
      this.emit('ready');
    }
  }

  #send(stream: Stream, req: Partial<DeltaDiscoveryRequest> & { typeUrl: string }): void {
    stream.write({
      resourceNamesSubscribe: [],
      resourceNamesUnsubscribe: [],
      initialResourceVersions: {},
      responseNonce: '',
      ...req,
    });
  }
}

function toDelta(type: XdsType, res: DeltaDiscoveryResponse): StoreDelta {
  const delta: Required<StoreDelta> = {
    workloads: [],
    services: [],
    policies: [],
    removedWorkloads: [],
    removedServices: [],
    removedPolicies: [],
  };
  for (const r of res.resources) {
    if (!r.resource || r.resource.typeUrl !== type)
      throw discoveryError(
        'ERR_XDS_RESOURCE',
        `resource ${r.name} is a ${r.resource?.typeUrl ?? 'nothing'}, not ${type}`,
      );
    if (type === AUTHORIZATION_TYPE_URL) {
      delta.policies.push(
        fromPbAuthorization(decode<PbAuthorization>(AuthorizationSchema, r.resource.value)),
      );
      continue;
    }
    const address = decode<PbAddress>(AddressSchema, r.resource.value);
    if (address.workload) delta.workloads.push(fromPbWorkload(address.workload));
    else if (address.service) delta.services.push(fromPbService(address.service));
    else throw discoveryError('ERR_XDS_RESOURCE', `address ${r.name} is neither a workload nor a service`);
  }
  // An Address name is a workload uid or a service `namespace/hostname`; removing both ways is exact.
  if (type === AUTHORIZATION_TYPE_URL) delta.removedPolicies.push(...res.removedResources);
  else {
    delta.removedWorkloads.push(...res.removedResources);
    delta.removedServices.push(...res.removedResources);
  }
  return delta;
}
