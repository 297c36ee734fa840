/**
 * ztunnel's side of the Istio CA (reference §4): `CreateCertificate` over TLS with the bearer token,
 * `ImpersonatedIdentity` set to the pod identity being requested (shared mode), and the response split
 * into leaf + intermediates and the root bundle (last element). Implements CertificateAuthority, so the
 * CertificateManager uses it exactly as it uses the local CA. Like ztunnel's client, it dials again as
 * soon as it is asked after a failure: retries are paced by the CertificateManager's back-off, so
 * grpc's own reconnect back-off (which fails calls at once for up to 120 s) must not stack on it.
 */
import type { AmbitError } from '../errors.js';
import { type ControlPlaneChannelConfig, controlPlaneChannel } from '../xds/channel.js';
import { type GrpcChannel, type GrpcError, GrpcStatus, grpcStatusName } from '../xds/grpc-client.js';
import { type IstioCertificateResponse, stringStruct } from '../xds/messages.js';
import { CERTIFICATE_SERVICE } from '../xds/services.js';
import type { CertificateAuthority, SignedCertificate, SignOptions } from './ca.js';
import { identityError } from './errors.js';

export const DEFAULT_CA_ADDRESS = 'https://localhost:15012';
const DEFAULT_TIMEOUT_MS = 10_000;

export interface IstioCaClientOptions extends ControlPlaneChannelConfig {
  timeoutMs?: number;
}

export class IstioCaClient implements CertificateAuthority {
  readonly #options: IstioCaClientOptions;
  #channel: GrpcChannel;
  readonly #timeoutMs: number;
  #closed = false;
  readonly address: string;

  constructor(options: IstioCaClientOptions) {
    this.address = options.address;
    this.#options = options;
    this.#channel = controlPlaneChannel(options);
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** After UNAVAILABLE the connection may be half-broken; the next request dials a fresh one. */
  #replaceChannel(failed: GrpcChannel): void {
    if (this.#closed || this.#channel !== failed) return;
    failed.close();
    this.#channel = controlPlaneChannel(this.#options);
  }

  async sign(csrPem: string, options: SignOptions): Promise<SignedCertificate> {
    const m = CERTIFICATE_SERVICE.CreateCertificate;
    const channel = this.#channel;
    let res: IstioCertificateResponse;
    try {
      res = await channel.unary(
        m.path,
        m.requestSerialize,
        m.responseDeserialize,
        {
          csr: csrPem,
          validityDuration: options.ttlSeconds,
          metadata: stringStruct({ ImpersonatedIdentity: options.identity }),
        },
        { deadline: Date.now() + this.#timeoutMs },
      );
    } catch (err) {
      const e = err as GrpcError;
      if (e.code === GrpcStatus.UNAVAILABLE) this.#replaceChannel(channel);
      throw caError(this.address, e);
    }
    const chain = res.certChain;
    if (chain.length < 2)
      throw identityError('ERR_CA_RESPONSE', `CA ${this.address}: no root certificate present`);
    return { certChainPem: chain.slice(0, -1), rootPem: chain[chain.length - 1]! };
  }

  close(): void {
    this.#closed = true;
    this.#channel.close();
  }
}

function caError(address: string, err: GrpcError): AmbitError {
  const name = grpcStatusName(err.code);
  return identityError(`ERR_CA_${name}`, `CA ${address} answered ${name}: ${err.details || err.message}`, {
    cause: err,
  });
}
