/** HTTP/1.1 over the agent's Unix socket: the ADD event and the STATUS probe. */
import http from 'node:http';
import { CMDADD_PATH, STATUS_PATH, type WireCniEvent } from '../event.js';
import { pluginError } from './errors.js';

export const EVENT_TIMEOUT_MS = 5_000;
const MAX_REASON = 1 << 20;

interface Answer {
  status: number;
  body: string;
}

function request(
  socketPath: string,
  method: string,
  path: string,
  body: string | undefined,
  timeoutMs: number,
) {
  return new Promise<Answer>((resolve, reject) => {
    const headers: Record<string, string | number> = {};
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const req = http.request({ socketPath, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        // The agent's reason is kept up to 1 MiB, as istio-cni's plugin does.
        if (size < MAX_REASON) chunks.push(c.subarray(0, MAX_REASON - size));
        size += c.length;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    // One deadline for the whole exchange (connect, send, answer), like Go's http.Client.Timeout.
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('error', reject);
    req.end(body);
  });
}

/** Resolves when the agent answered 200; rejects AGENT_UNREACHABLE or AGENT_REFUSED otherwise. */
export async function postCmdAdd(socketPath: string, event: WireCniEvent, timeoutMs = EVENT_TIMEOUT_MS) {
  let answer: Answer;
  try {
    answer = await request(socketPath, 'POST', CMDADD_PATH, JSON.stringify(event), timeoutMs);
  } catch (err) {
    throw pluginError(
      'AGENT_UNREACHABLE',
      `node agent could not be contacted on ${socketPath}: ${(err as Error).message}`,
    );
  }
  if (answer.status !== 200) {
    throw pluginError(
      'AGENT_REFUSED',
      `node agent on ${socketPath} answered HTTP ${answer.status}: ${answer.body.trim() || '(no reason given)'}`,
    );
  }
}

/** The agent's readiness as its event socket reports it: undefined when ready, else why not. */
export async function agentNotReady(
  socketPath: string,
  timeoutMs = EVENT_TIMEOUT_MS,
): Promise<string | undefined> {
  try {
    const answer = await request(socketPath, 'GET', STATUS_PATH, undefined, timeoutMs);
    if (answer.status === 200) return undefined;
    return `node agent on ${socketPath} is not ready (HTTP ${answer.status}): ${answer.body.trim() || '(no reason given)'}`;
  } catch (err) {
    return `node agent could not be contacted on ${socketPath}: ${(err as Error).message}`;
  }
}
