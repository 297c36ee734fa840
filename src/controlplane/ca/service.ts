/**
 * `istio.v1.auth.IstioCertificateService/CreateCertificate`: authenticate the bearer token, decide which
 * identity the caller may have signed, sign the CSR with the local CA and return leaf..root. A caller
 * gets its own identity; a node proxy may ask (`ImpersonatedIdentity`) for the identity of a pod
 * scheduled on its own node. Every refusal is a gRPC status with a reason; nothing a caller sends
 * can throw out of the handler.
 */
import { type Metadata, type ServerUnaryCall, type sendUnaryData, status } from '@grpc/grpc-js';
import { errorMessage } from '../../errors.js';
import type { CertificateAuthority } from '../../identity/ca.js';
import type { IdentityErrorCode } from '../../identity/errors.js';
import { formatSpiffeId, parseSpiffeId, type SpiffeId, spiffeParts } from '../../identity/spiffe.js';
import { logger } from '../../runtime/log.js';
import type { IstioCertificateRequest, IstioCertificateResponse } from '../../xds/messages.js';
import { structString } from '../../xds/messages.js';
import {
  authenticateCall,
  type Caller,
  CallRefusal,
  type TokenAuthenticator,
} from '../auth/authenticator.js';
import { forwardedCode } from '../errors.js';

const log = logger('ambit::controlplane::ca');
export const IMPERSONATED_IDENTITY = 'ImpersonatedIdentity';
export const DEFAULT_NODE_PROXIES = ['istio-system/ztunnel'];
const DEFAULT_TTL_SECONDS = 86_400;
const DEFAULT_MAX_TTL_SECONDS = 7 * 86_400;

/** Just what the CA needs to know about pods. */
export interface PodInfo {
  namespace: string;
  name: string;
  serviceAccount: string;
  nodeName: string;
}

export interface PodLookup {
  get(namespace: string, name: string): Promise<PodInfo | undefined>;
  list(namespace: string): Promise<PodInfo[]>;
}

export interface CertificateServiceOptions {
  ca: CertificateAuthority & { rootPem: string };
  trustDomain: string;
  authenticator: TokenAuthenticator;
  pods: PodLookup;
  /** `namespace/serviceAccount` of node proxies allowed to impersonate pods on their node. */
  nodeProxies?: string[];
  maxTtlSeconds?: number;
}

const STATUS_OF_SIGN_ERROR: Record<string, status> = {
  ERR_CSR_INVALID: status.INVALID_ARGUMENT,
  ERR_CSR_KEY: status.INVALID_ARGUMENT,
  ERR_CSR_SAN: status.INVALID_ARGUMENT,
  ERR_CA_TTL: status.INVALID_ARGUMENT,
  ERR_TRUST_DOMAIN: status.PERMISSION_DENIED,
  ERR_IDENTITY_MISMATCH: status.PERMISSION_DENIED,
} satisfies Partial<Record<IdentityErrorCode, status>>;

export class CertificateService {
  readonly #o: CertificateServiceOptions;
  readonly #nodeProxies: Set<string>;
  readonly #maxTtl: number;

  constructor(options: CertificateServiceOptions) {
    this.#o = options;
    this.#nodeProxies = new Set(options.nodeProxies ?? DEFAULT_NODE_PROXIES);
    this.#maxTtl = options.maxTtlSeconds ?? DEFAULT_MAX_TTL_SECONDS;
  }

  /** The grpc-js handler. */
  readonly handler = (
    call: ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>,
    callback: sendUnaryData<IstioCertificateResponse>,
  ): void => {
    this.createCertificate(call.metadata, call.request).then(
      (certChain) => callback(null, { certChain }),
      (err) => {
        const refusal =
          err instanceof CallRefusal
            ? err
            : new CallRefusal(
                status.INTERNAL,
                forwardedCode(err, 'ERR_CA_INTERNAL'),
                `signing failed: ${errorMessage(err)}`,
              );
        log.warn('certificate request refused', { code: refusal.code, reason: refusal.message });
        callback({ code: refusal.grpcCode, details: refusal.message });
      },
    );
  };

  async createCertificate(metadata: Metadata, request: IstioCertificateRequest): Promise<string[]> {
    const caller = await authenticateCall(this.#o.authenticator, metadata);
    const ttl = this.#ttl(request.validityDuration);
    const identity = await this.#identityFor(caller, structString(request.metadata, IMPERSONATED_IDENTITY));
    let signed: Awaited<ReturnType<CertificateAuthority['sign']>>;
    try {
      signed = await this.#o.ca.sign(request.csr, { ttlSeconds: ttl, identity });
    } catch (err) {
      const code = forwardedCode(err, 'ERR_CA_INTERNAL');
      throw new CallRefusal(STATUS_OF_SIGN_ERROR[code] ?? status.INTERNAL, code, errorMessage(err));
    }
    log.info('certificate issued', {
      identity,
      caller: `${caller.namespace}/${caller.serviceAccount}`,
      ttl_seconds: ttl,
    });
    return [...signed.certChainPem, signed.rootPem];
  }

  #ttl(requested: number): number {
    if (requested === 0) return Math.min(DEFAULT_TTL_SECONDS, this.#maxTtl);
    if (!(Number.isSafeInteger(requested) && requested > 0))
      throw new CallRefusal(
        status.INVALID_ARGUMENT,
        'ERR_CA_TTL',
        `validity_duration must be positive seconds, got ${requested}`,
      );
    if (requested > this.#maxTtl)
      throw new CallRefusal(
        status.INVALID_ARGUMENT,
        'ERR_CA_TTL',
        `requested TTL ${requested}s is greater than the max allowed TTL ${this.#maxTtl}s`,
      );
    return requested;
  }

  async #identityFor(caller: Caller, impersonated: string | undefined): Promise<SpiffeId> {
    const own = formatSpiffeId({
      trustDomain: this.#o.trustDomain,
      namespace: caller.namespace,
      serviceAccount: caller.serviceAccount,
    });
    if (impersonated === undefined || impersonated === own) return own;
    let target: SpiffeId;
    try {
      target = parseSpiffeId(impersonated);
    } catch (err) {
      throw new CallRefusal(
        status.INVALID_ARGUMENT,
        'ERR_SPIFFE_ID',
        `${IMPERSONATED_IDENTITY}: ${errorMessage(err)}`,
      );
    }
    const who = `${caller.namespace}/${caller.serviceAccount}`;
    if (!this.#nodeProxies.has(who))
      throw new CallRefusal(
        status.PERMISSION_DENIED,
        'ERR_IMPERSONATION_DENIED',
        `${who} is not a node proxy and may not ask for ${target}`,
      );
    if (!caller.podName)
      throw new CallRefusal(
        status.PERMISSION_DENIED,
        'ERR_IMPERSONATION_DENIED',
        `the token of ${who} is not bound to a pod, so its node is unknown`,
      );
    const proxyPod = await this.#pods(() => this.#o.pods.get(caller.namespace, caller.podName!));
    if (!proxyPod?.nodeName)
      throw new CallRefusal(
        status.PERMISSION_DENIED,
        'ERR_IMPERSONATION_DENIED',
        `node proxy pod ${caller.namespace}/${caller.podName} is not scheduled on a node`,
      );
    const parts = spiffeParts(target);
    if (parts.trustDomain !== this.#o.trustDomain)
      throw new CallRefusal(
        status.PERMISSION_DENIED,
        'ERR_TRUST_DOMAIN',
        `${target} is outside this CA's trust domain ${this.#o.trustDomain}`,
      );
    const pods = await this.#pods(() => this.#o.pods.list(parts.namespace));
    const local = pods.some(
      (p) => p.nodeName === proxyPod.nodeName && p.serviceAccount === parts.serviceAccount,
    );
    if (!local)
      throw new CallRefusal(
        status.PERMISSION_DENIED,
        'ERR_IMPERSONATION_DENIED',
        `no pod with service account ${parts.namespace}/${parts.serviceAccount} runs on node ${proxyPod.nodeName} of ${who}`,
      );
    return target;
  }

  async #pods<T>(lookup: () => Promise<T>): Promise<T> {
    try {
      return await lookup();
    } catch (err) {
      throw new CallRefusal(
        status.UNAVAILABLE,
        'ERR_POD_LOOKUP',
        `cannot look up pods: ${errorMessage(err)}`,
      );
    }
  }
}
