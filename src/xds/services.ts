/**
 * gRPC method definitions with the codecs of messages.ts: the Istio CA service and Envoy's aggregated
 * discovery service. The ztunnel's clients call them; the shape is also grpc-js's MethodDefinition, so
 * the control plane's grpc-js server serves them as they are. A request that does not decode fails the
 * call (grpc-js answers INTERNAL "Error deserializing request") instead of reaching a handler.
 */
import { decode, encode, type MessageSchema } from './codec.js';
import {
  type DeltaDiscoveryRequest,
  DeltaDiscoveryRequestSchema,
  type DeltaDiscoveryResponse,
  DeltaDiscoveryResponseSchema,
  type IstioCertificateRequest,
  IstioCertificateRequestSchema,
  type IstioCertificateResponse,
  IstioCertificateResponseSchema,
} from './messages.js';

export interface MethodDefinition<Req, Res> {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize: (message: Req) => Buffer;
  requestDeserialize: (bytes: Buffer) => Req;
  responseSerialize: (message: Res) => Buffer;
  responseDeserialize: (bytes: Buffer) => Res;
}

function method<Req, Res>(
  path: string,
  req: MessageSchema,
  res: MessageSchema,
  streaming: boolean,
): MethodDefinition<Req, Res> {
  return {
    path,
    requestStream: streaming,
    responseStream: streaming,
    requestSerialize: (m: Req) => Buffer.from(encode(req, m as object)),
    requestDeserialize: (b: Buffer) => decode<Req>(req, b),
    responseSerialize: (m: Res) => Buffer.from(encode(res, m as object)),
    responseDeserialize: (b: Buffer) => decode<Res>(res, b),
  };
}

export const CERTIFICATE_SERVICE = {
  CreateCertificate: method<IstioCertificateRequest, IstioCertificateResponse>(
    '/istio.v1.auth.IstioCertificateService/CreateCertificate',
    IstioCertificateRequestSchema,
    IstioCertificateResponseSchema,
    false,
  ),
};

export const AGGREGATED_DISCOVERY_SERVICE = {
  DeltaAggregatedResources: method<DeltaDiscoveryRequest, DeltaDiscoveryResponse>(
    '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
    DeltaDiscoveryRequestSchema,
    DeltaDiscoveryResponseSchema,
    true,
  ),
};
