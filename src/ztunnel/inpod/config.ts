/**
 * In-pod mode settings from the environment (names and defaults as upstream ztunnel), and the
 * start-up lines users grep for (`kubectl logs ds/ztunnel | grep inpod`).
 */

import { PROXY_MARK, ZDS_SOCKET_PATH } from '../../node/contract.js';
import { logger } from '../../runtime/log.js';
import { configError, parseBool } from '../../runtime/options.js';

export interface InPodConfig {
  /** In-pod ("shared") proxy mode: PROXY_MODE unset or `shared`. */
  enabled: boolean;
  /** INPOD_UDS: the node agent's ZDS socket. */
  uds: string;
  /** INPOD_PORT_REUSE: bind pod listeners with SO_REUSEPORT, so a new proxy can take over during upgrades. */
  portReuse: boolean;
  /** PACKET_MARK: SO_MARK on every socket the proxy makes, so the in-pod rules let it through. */
  mark: number;
}

function bool(name: string, value: string): boolean {
  const b = parseBool(value.trim());
  if (b === undefined) throw configError(`${name}=${value}: expected true or false`);
  return b;
}

export function inPodConfigFromEnv(env: NodeJS.ProcessEnv = process.env): InPodConfig {
  const mode = env['PROXY_MODE']?.trim() || 'shared';
  if (mode !== 'shared' && mode !== 'dedicated') {
    throw configError(`PROXY_MODE=${mode}: expected shared or dedicated`);
  }
  const markText = env['PACKET_MARK']?.trim();
  const mark = markText ? Number(markText) : PROXY_MARK;
  if (!Number.isInteger(mark) || mark < 0 || mark > 0xffffffff) {
    throw configError(`PACKET_MARK=${markText}: expected an integer from 0 to 4294967295`);
  }
  return {
    enabled: mode === 'shared',
    uds: env['INPOD_UDS']?.trim() || ZDS_SOCKET_PATH,
    portReuse:
      env['INPOD_PORT_REUSE'] === undefined ? true : bool('INPOD_PORT_REUSE', env['INPOD_PORT_REUSE']),
    mark,
  };
}

/** The plain start-up lines of the seed: `inpod_enabled: true`, `inpod_uds: ...`, ... */
export function logInPodConfig(config: InPodConfig): void {
  const log = logger('ztunnel::inpod');
  log.raw(`inpod_enabled: ${config.enabled}`);
  if (!config.enabled) return;
  log.raw(`inpod_uds: ${config.uds}`);
  log.raw(`inpod_port_reuse: ${config.portReuse}`);
  log.raw(`inpod_mark: ${config.mark}`);
}
