/** DNS over TCP (RFC 1035 §4.2.2, RFC 7766): each message behind its two-byte length. */
import type { Socket } from 'node:net';

export function writeTcpMessage(socket: Socket, message: Buffer): void {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(message.length);
  socket.write(Buffer.concat([length, message]));
}

/**
 * Calls `onMessage` with each message as it completes, in order; returns a function that feeds the
 * socket's data. A message is at most 65,535 bytes by construction, so nothing grows without bound.
 */
export function tcpMessageReader(onMessage: (message: Buffer) => void): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 2) {
      const length = pending.readUInt16BE(0);
      if (pending.length < 2 + length) break;
      onMessage(pending.subarray(2, 2 + length));
      pending = pending.subarray(2 + length);
    }
  };
}

/** The first whole message on `socket`, or undefined when it ends before one. */
export function readTcpMessage(socket: Socket): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const feed = tcpMessageReader((message) => {
      cleanup();
      resolve(Buffer.from(message));
    });
    const onEnd = () => {
      cleanup();
      resolve(undefined);
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      socket.off('data', feed);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
    };
    socket.on('data', feed);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
  });
}
