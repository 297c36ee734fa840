export { connectToAgent, ZdsClientConnection, type ZdsClientHandlers } from './client.js';
export { ZdsError, type ZdsErrorCode } from './errors.js';
export * from './messages.js';
export {
  closeFds,
  type RequestPacket,
  readHelloPacket,
  readRequestPacket,
  readResponsePacket,
  ZDS_MAX_MESSAGE,
} from './packet.js';
export {
  type SnapshotPod,
  type ZdsPodSource,
  ZdsServer,
  type ZdsServerEvents,
  type ZdsServerOptions,
} from './server.js';
