/**
 * The node proxy's end of one ZDS connection (ztunnel's WorkloadStreamProcessor): the hello first, then
 * every datagram from the agent read as a request (a malformed one reported, its fds closed) and one
 * response sent per request. What a request does to the proxy's pods is the caller's business.
 */
import { connectSeqpacket, type SeqpacketSocket } from '../sys/index.js';
import {
  type Decoded,
  encodeHello,
  encodeResponse,
  type WorkloadResponse,
  ZDS_VERSION_V1,
} from './messages.js';
import { type RequestPacket, readRequestPacket, ZDS_MAX_MESSAGE } from './packet.js';

export interface ZdsClientHandlers {
  /** A datagram from the agent: the request (an Add's netns fd now the handler's), or why it is malformed. */
  request(packet: Decoded<RequestPacket>): void;
  /** A datagram longer than ZDS allows arrived cut short. */
  truncated(): void;
  error(err: Error): void;
  close(): void;
}

/** Connects to the agent's socket (INPOD_UDS); throws when nothing listens there. */
export function connectToAgent(path: string): SeqpacketSocket {
  return connectSeqpacket(path, { maxMessageSize: ZDS_MAX_MESSAGE });
}

export class ZdsClientConnection {
  readonly #socket: SeqpacketSocket;

  constructor(socket: SeqpacketSocket, handlers: ZdsClientHandlers) {
    this.#socket = socket;
    socket.on('message', (data, fds) => handlers.request(readRequestPacket(data, fds)));
    socket.on('truncated', () => handlers.truncated());
    socket.on('error', (err) => handlers.error(err));
    socket.once('close', () => handlers.close());
  }

  get closed(): boolean {
    return this.#socket.closed;
  }

  /** Announces this proxy; the agent then sends its snapshot. */
  hello(): Promise<void> {
    return this.#socket.send(encodeHello({ version: ZDS_VERSION_V1 }));
  }

  /** Answers the request being processed (ACK or NACK): acks are matched to requests by order. */
  respond(response: WorkloadResponse): Promise<void> {
    return this.#socket.send(encodeResponse(response));
  }

  close(): void {
    this.#socket.close();
  }
}
