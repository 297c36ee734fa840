import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setLogSink } from '../../src/runtime/log.js';
import { inPodConfigFromEnv, logInPodConfig } from '../../src/ztunnel/inpod/config.js';

describe('in-pod configuration', () => {
  it('defaults to shared mode on the standard socket with port reuse and mark 1337', () => {
    assert.deepEqual(inPodConfigFromEnv({}), {
      enabled: true,
      uds: '/var/run/ztunnel/ztunnel.sock',
      portReuse: true,
      mark: 1337,
    });
  });

  it('reads INPOD_UDS, INPOD_PORT_REUSE, PACKET_MARK and PROXY_MODE', () => {
    assert.deepEqual(
      inPodConfigFromEnv({
        INPOD_UDS: '/tmp/z.sock',
        INPOD_PORT_REUSE: 'false',
        PACKET_MARK: '0x539',
        PROXY_MODE: 'dedicated',
      }),
      { enabled: false, uds: '/tmp/z.sock', portReuse: false, mark: 1337 },
    );
  });

  it('rejects bad values with ERR_CONFIG', () => {
    for (const env of [
      { INPOD_PORT_REUSE: 'yes please' },
      { PACKET_MARK: '-1' },
      { PACKET_MARK: 'x' },
      { PROXY_MODE: 'sidecar' },
    ]) {
      assert.throws(() => inPodConfigFromEnv(env), { code: 'ERR_CONFIG' }, JSON.stringify(env));
    }
  });

  it('prints the start-up lines users grep for', () => {
    const lines: string[] = [];
    setLogSink({ write: (l: string) => lines.push(l) });
    try {
      logInPodConfig({ enabled: true, uds: '/var/run/ztunnel/ztunnel.sock', portReuse: true, mark: 1337 });
    } finally {
      setLogSink(process.stdout);
    }
    assert.deepEqual(
      lines.join(''),
      'inpod_enabled: true\ninpod_uds: /var/run/ztunnel/ztunnel.sock\ninpod_port_reuse: true\ninpod_mark: 1337\n',
    );
  });
});
