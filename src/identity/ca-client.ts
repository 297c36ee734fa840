/**
 * ztunnel's side of the Istio CA (reference §4): `CreateCertificate` over TLS with the bearer token,
 * `ImpersonatedIdentity` set to the pod identity being requested (shared mode), and the response split
 * into leaf + intermediates and the root bundle (last element). Implements CertificateAuthority, so the
 * CertificateManager uses it exactly as it uses the local CA. Like ztunnel's client, it dials again as
 * soon as it is asked after a failure: retries are paced by the CertificateManager's back-off, so
 * grpc's own reconnect back-off (which fails calls at once for up to 120 s) must not stack on it.
 */
import { Client, type ServiceError, status } from '@grpc/grpc-js';
import type { AmbitError } from '../errors.js';
import {
  type ControlPlaneChannelConfig,
  channelCredentials,
  channelOptions,
  grpcTarget,
} from '../xds/channel.js';
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
  #client: Client;
  readonly #timeoutMs: number;
  #closed = false;
  readonly address: string;

  constructor(options: IstioCaClientOptions) {
    this.address = options.address;
    this.#options = options;
    this.#client = this.#newClient();
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  #newClient(): Client {
    return new Client(
      grpcTarget(this.#options.address),
      channelCredentials(this.#options),
      channelOptions(this.#options),
    );
  }

  /** After UNAVAILABLE the channel sits in reconnect back-off; the next request gets a fresh one. */
  #replaceChannel(failed: Client): void {
    if (this.#closed || this.#client !== failed) return;
    failed.close();
    this.#client = this.#newClient();
  }

  sign(csrPem: string, options: SignOptions): Promise<SignedCertificate> {
    const m = CERTIFICATE_SERVICE.CreateCertificate;
    const client = this.#client;
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest(
        m.path,
        m.requestSerialize,
        m.responseDeserialize,
        {
          csr: csrPem,
          validityDuration: options.ttlSeconds,
          metadata: stringStruct({ ImpersonatedIdentity: options.identity }),
        },
        { deadline: Date.now() + this.#timeoutMs },
        (err: ServiceError | null, res?: IstioCertificateResponse) => {
          if (err) {
            if (err.code === status.UNAVAILABLE) this.#replaceChannel(client);
            return reject(caError(this.address, err));
          }
          const chain = res?.certChain ?? [];
          if (chain.length < 2)
            return reject(
              identityError('ERR_CA_RESPONSE', `CA ${this.address}: no root certificate present`),
            );
          resolve({ certChainPem: chain.slice(0, -1), rootPem: chain[chain.length - 1]! });
        },
      );
    });
  }

  close(): void {
    this.#closed = true;
    this.#client.close();
  }
}

function caError(address: string, err: ServiceError): AmbitError {
  const name = status[err.code] ?? String(err.code);
  return identityError(`ERR_CA_${name}`, `CA ${address} answered ${name}: ${err.details || err.message}`, {
    cause: err,
  });
}
