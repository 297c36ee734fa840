/**
 * Delta ADS (`DeltaAggregatedResources`) over a ResourceCache. Per stream and type URL it tracks what the
 * client has (seeded by `initial_resource_versions` on reconnect) and sends only differences: changed
 * resources and removed names. A NACK (error_detail set) is logged and the rejected resources are marked
 * unknown again, so the next change re-sends them. Every type's first request gets a response, even an
 * empty one, because clients become ready only once each type has been ACKed. A stream is served only
 * once its bearer token passed the same TokenReview as the CA's callers; otherwise it ends with
 * UNAUTHENTICATED before a single resource is read or sent.
 */
import { randomBytes } from 'node:crypto';
import { type ServerDuplexStream, status } from '@grpc/grpc-js';
import { errorMessage } from '../../errors.js';
import { logger } from '../../runtime/log.js';
import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse } from '../../xds/messages.js';
import {
  authenticateCall,
  type Caller,
  CallRefusal,
  type TokenAuthenticator,
} from '../auth/authenticator.js';
import { forwardedCode } from '../errors.js';
import { isTypeUrl, type ResourceCache, TYPE_URLS, type TypeUrl } from './resource-cache.js';

const log = logger('ambit::controlplane::xds');
const WILDCARD = '*';

interface TypeState {
  wildcard: boolean;
  names: Set<string>;
  /** name -> version the client is believed to hold. */
  sent: Map<string, string>;
}

interface Inflight {
  type: TypeUrl;
  /** name -> version the client held before this response (undefined = none). */
  before: Map<string, string | undefined>;
  /** name -> version this response installed (undefined = removed). */
  after: Map<string, string | undefined>;
}

export type DeltaCall = ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

export interface XdsServerStats {
  streams: number;
  acks: number;
  nacks: number;
}

export class DeltaXdsServer {
  readonly #cache: ResourceCache;
  readonly #authenticator: TokenAuthenticator;
  readonly #noncePrefix = randomBytes(4).toString('hex');
  #nonce = 0;
  readonly stats: XdsServerStats = { streams: 0, acks: 0, nacks: 0 };

  constructor(cache: ResourceCache, authenticator: TokenAuthenticator) {
    this.#cache = cache;
    this.#authenticator = authenticator;
  }

  /** The grpc-js handler: requests stay unread until the caller is authenticated. */
  readonly handler = (call: DeltaCall): void => {
    authenticateCall(this.#authenticator, call.metadata).then(
      (caller) => {
        if (!call.cancelled && !call.destroyed) this.#serve(call, caller);
      },
      (err: unknown) => {
        const refusal =
          err instanceof CallRefusal
            ? err
            : new CallRefusal(status.INTERNAL, forwardedCode(err, 'ERR_XDS_INTERNAL'), errorMessage(err));
        log.warn('xds stream refused', {
          peer: call.getPeer(),
          code: refusal.code,
          reason: refusal.message,
        });
        // Ends the call with this status (grpc-js turns a stream 'error' into the trailers).
        call.emit('error', { code: refusal.grpcCode, details: refusal.message });
      },
    );
  };

  #serve(call: DeltaCall, caller: Caller): void {
    const who = `${caller.namespace}/${caller.serviceAccount}`;
    const types = new Map<TypeUrl, TypeState>();
    const inflight = new Map<string, Inflight>();
    let node = '';
    this.stats.streams++;

    const push = (type: TypeUrl, force: boolean): void => {
      const state = types.get(type);
      if (!state || call.cancelled || call.destroyed) return;
      const current = this.#cache.resources(type);
      const response: DeltaDiscoveryResponse = {
        systemVersionInfo: '',
        resources: [],
        typeUrl: type,
        removedResources: [],
        nonce: `${this.#noncePrefix}-${++this.#nonce}`,
      };
      const flight: Inflight = { type, before: new Map(), after: new Map() };
      for (const [name, r] of current) {
        if (!(state.wildcard || state.names.has(name))) continue;
        if (state.sent.get(name) === r.version) continue;
        response.resources.push({
          name,
          version: r.version,
          aliases: [],
          resource: { typeUrl: type, value: r.value },
        });
        flight.before.set(name, state.sent.get(name));
        flight.after.set(name, r.version);
        state.sent.set(name, r.version);
      }
      for (const [name, version] of [...state.sent]) {
        if (current.has(name) && (state.wildcard || state.names.has(name))) continue;
        response.removedResources.push(name);
        flight.before.set(name, version);
        flight.after.set(name, undefined);
        state.sent.delete(name);
      }
      if (!force && response.resources.length === 0 && response.removedResources.length === 0) return;
      inflight.set(response.nonce, flight);
      call.write(response);
      log.debug('sent delta', {
        node,
        type,
        nonce: response.nonce,
        resources: response.resources.length,
        removed: response.removedResources.length,
      });
    };

    const onChange = (changed: TypeUrl[]): void => {
      for (const type of changed) push(type, false);
    };
    this.#cache.on('change', onChange);

    const onRequest = (req: DeltaDiscoveryRequest): void => {
      if (req.node?.id) node = req.node.id;
      if (!isTypeUrl(req.typeUrl)) {
        log.warn('request for an unknown type, ignored', {
          node,
          type: req.typeUrl,
          known: TYPE_URLS.join(','),
        });
        return;
      }
      if (req.responseNonce !== '') this.#onAck(req, inflight, types, node);
      let state = types.get(req.typeUrl);
      if (!state) {
        const subscribe = req.resourceNamesSubscribe;
        state = {
          wildcard: subscribe.length === 0 || subscribe.includes(WILDCARD),
          names: new Set(subscribe.filter((n) => n !== WILDCARD)),
          sent: new Map(Object.entries(req.initialResourceVersions)),
        };
        types.set(req.typeUrl, state);
        log.info('new delta subscription', {
          node,
          caller: who,
          type: req.typeUrl,
          wildcard: state.wildcard,
          known: state.sent.size,
        });
        push(req.typeUrl, true);
        return;
      }
      let changed = false;
      for (const name of req.resourceNamesSubscribe) {
        if (name === WILDCARD) state.wildcard = true;
        else state.names.add(name);
        changed = true;
      }
      for (const name of req.resourceNamesUnsubscribe) {
        if (name === WILDCARD) state.wildcard = false;
        else state.names.delete(name);
        // The client drops what it unsubscribed from; no removal is owed.
        if (!state.wildcard) state.sent.delete(name);
        changed = true;
      }
      if (changed) push(req.typeUrl, false);
    };

    call.on('data', (req: DeltaDiscoveryRequest) => {
      try {
        onRequest(req);
      } catch (err) {
        log.error('cannot handle a delta request', { node, error: errorMessage(err) });
      }
    });
    const done = (): void => {
      this.#cache.off('change', onChange);
      this.stats.streams--;
    };
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      done();
    };
    call.on('end', () => {
      close();
      call.end();
    });
    call.on('cancelled', close);
    call.on('error', (err) => {
      log.debug('delta stream error', { node, error: errorMessage(err) });
      close();
    });
    call.on('close', close);
  }

  #onAck(
    req: DeltaDiscoveryRequest,
    inflight: Map<string, Inflight>,
    types: Map<TypeUrl, TypeState>,
    node: string,
  ): void {
    const flight = inflight.get(req.responseNonce);
    inflight.delete(req.responseNonce);
    const nack =
      req.errorDetail !== undefined && (req.errorDetail.code !== 0 || req.errorDetail.message !== '');
    if (!nack) {
      this.stats.acks++;
      log.debug('ACK', { node, type: req.typeUrl, nonce: req.responseNonce });
      return;
    }
    this.stats.nacks++;
    log.warn('NACK', {
      node,
      type: req.typeUrl,
      nonce: req.responseNonce,
      code: req.errorDetail?.code,
      error: req.errorDetail?.message,
    });
    const state = flight && types.get(flight.type);
    if (!flight || !state) return;
    // The client kept what it had before this response; forget what we thought it installed.
    for (const [name, after] of flight.after) {
      if (state.sent.get(name) !== after) continue;
      const before = flight.before.get(name);
      if (before === undefined) state.sent.delete(name);
      else state.sent.set(name, before);
    }
  }
}
