/** `ambit ztunnel` configuration: ztunnel's variable names, flags winning over them, clear errors. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { OPTIONS, parseDuration, parseZtunnelConfig, ztunnelHelp } from '../../src/ztunnel/config.js';

const parse = (argv: string[], env: Record<string, string> = {}) => parseZtunnelConfig(argv, env);

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.equal((err as { code?: string }).code, 'ERR_CONFIG', String(err));
    return (err as Error).message;
  }
  assert.fail('expected an ERR_CONFIG error');
}

describe('ztunnel configuration', () => {
  test("defaults are upstream ztunnel's (SOCKS5 on, as the seed shows 15080)", () => {
    const c = parse([]);
    assert.equal(c.inpodUds, '/var/run/ztunnel/ztunnel.sock');
    assert.equal(c.inpodPortReuse, true);
    assert.equal(c.packetMark, 1337);
    assert.equal(c.localXdsPath, undefined);
    assert.equal(c.nodeName, undefined);
    assert.equal(c.socks5, true);
    assert.equal(c.drainDeadlineMs, 5000);
    assert.deepEqual(c.log, [{ level: 'info' }]);
    assert.equal(c.workers, 1);
    assert.deepEqual(c.adminAddr, { host: 'localhost', port: 15000 });
    assert.deepEqual(c.metricsAddr, { host: '::', port: 15020 });
    assert.deepEqual(c.readinessAddr, { host: '::', port: 15021 });
    assert.equal(c.hboneHandshakeTimeoutMs, 10_000, "tls-listener's default, which Istio's ztunnel uses");
    assert.deepEqual(c.hboneKeepalive, { intervalMs: 10_000, timeoutMs: 20_000 });
  });

  test("IPV6_ENABLED (default true) picks the wildcard: [::] dual-stack, else 0.0.0.0, as Istio's ztunnel", () => {
    assert.equal(parse([]).ipv6Enabled, true);
    const v4 = parse([], { IPV6_ENABLED: 'false' });
    assert.equal(v4.ipv6Enabled, false);
    assert.deepEqual(v4.metricsAddr, { host: '0.0.0.0', port: 15020 });
    assert.deepEqual(v4.readinessAddr, { host: '0.0.0.0', port: 15021 });
    assert.deepEqual(parse(['--ipv6-enabled', 'false', '--metrics-addr', '127.0.0.1:9']).metricsAddr, {
      host: '127.0.0.1',
      port: 9,
    });
    assert.match(
      configError(() => parse([], { IPV6_ENABLED: 'maybe' })),
      /^IPV6_ENABLED=maybe: expected true or false/,
    );
  });

  test('the HBONE handshake timeout: AMBIT_HBONE_HANDSHAKE_TIMEOUT or --hbone-handshake-timeout, above zero', () => {
    assert.equal(parse([], { AMBIT_HBONE_HANDSHAKE_TIMEOUT: '3s' }).hboneHandshakeTimeoutMs, 3000);
    assert.equal(parse(['--hbone-handshake-timeout', '500ms']).hboneHandshakeTimeoutMs, 500);
    assert.throws(
      () => parse(['--hbone-handshake-timeout', '0s']),
      /--hbone-handshake-timeout=0s: expected a duration above zero/,
    );
  });

  test('the HBONE keepalive comes from its flags or AMBIT_ variables; zero is refused', () => {
    const c = parse(['--hbone-keepalive-interval', '500ms'], { AMBIT_HBONE_KEEPALIVE_TIMEOUT: '2s' });
    assert.deepEqual(c.hboneKeepalive, { intervalMs: 500, timeoutMs: 2000 });
    assert.match(
      configError(() => parse(['--hbone-keepalive-timeout', '0s'])),
      /^--hbone-keepalive-timeout=0s: expected a duration above zero/,
    );
    assert.match(
      configError(() => parse([], { AMBIT_HBONE_KEEPALIVE_INTERVAL: '10' })),
      /^AMBIT_HBONE_KEEPALIVE_INTERVAL=10: expected a duration/,
    );
  });

  test('environment variables are read by their ztunnel names', () => {
    const c = parse([], {
      INPOD_UDS: '/run/agent.sock',
      INPOD_PORT_REUSE: 'false',
      PACKET_MARK: '0x10',
      LOCAL_XDS_PATH: '/etc/ambit/local.yaml',
      NODE_NAME: 'n1',
      UNSTABLE_ENABLE_SOCKS5: 'false',
      CONNECTION_TERMINATION_DEADLINE: '250ms',
      RUST_LOG: 'warn,ztunnel::proxy=debug',
      PROXY_MODE: 'shared',
    });
    assert.equal(c.inpodUds, '/run/agent.sock');
    assert.equal(c.inpodPortReuse, false);
    assert.equal(c.packetMark, 16);
    assert.equal(c.localXdsPath, '/etc/ambit/local.yaml');
    assert.equal(c.nodeName, 'n1');
    assert.equal(c.socks5, false);
    assert.equal(c.drainDeadlineMs, 250);
    assert.deepEqual(c.log, [{ level: 'warn' }, { target: 'ztunnel::proxy', level: 'debug' }]);
  });

  test('a flag wins over its environment variable', () => {
    const env = { INPOD_UDS: '/env.sock', PACKET_MARK: '7', INPOD_PORT_REUSE: 'false', NODE_NAME: 'env' };
    const c = parse(
      ['--inpod-uds', '/flag.sock', '--packet-mark=9', '--inpod-port-reuse', 'true', '--node-name', 'flag'],
      env,
    );
    assert.equal(c.inpodUds, '/flag.sock');
    assert.equal(c.packetMark, 9);
    assert.equal(c.inpodPortReuse, true);
    assert.equal(c.nodeName, 'flag');
  });

  test('the drain deadline: explicit deadline, else grace period minus 5 s (minus 1 s when ≤10), min 1 s', () => {
    assert.equal(parse([], { TERMINATION_GRACE_PERIOD_SECONDS: '30' }).drainDeadlineMs, 25_000);
    assert.equal(parse([], { TERMINATION_GRACE_PERIOD_SECONDS: '10' }).drainDeadlineMs, 9000);
    assert.equal(parse([], { TERMINATION_GRACE_PERIOD_SECONDS: '1' }).drainDeadlineMs, 1000);
    assert.equal(
      parse(['--connection-termination-deadline', '2s'], { TERMINATION_GRACE_PERIOD_SECONDS: '30' })
        .drainDeadlineMs,
      2000,
    );
    assert.equal(parseDuration('1.5m', 'X'), 90_000);
    assert.equal(parseDuration('1h', 'X'), 3_600_000);
  });

  test('listen addresses accept host:port, [v6]:port, :port and port 0', () => {
    const c = parse([
      '--admin-addr',
      '127.0.0.1:0',
      '--metrics-addr',
      '[::1]:9000',
      '--readiness-addr',
      ':0',
    ]);
    assert.deepEqual(c.adminAddr, { host: '127.0.0.1', port: 0 });
    assert.deepEqual(c.metricsAddr, { host: '::1', port: 9000 });
    assert.deepEqual(c.readinessAddr, { host: '::', port: 0 });
  });

  test('bad values are rejected naming the variable or flag they came from', () => {
    assert.match(
      configError(() => parse([], { PACKET_MARK: 'abc' })),
      /^PACKET_MARK=abc: /,
    );
    assert.match(
      configError(() => parse(['--packet-mark', '0'], { PACKET_MARK: '5' })),
      /^--packet-mark=0: /,
    );
    assert.match(
      configError(() => parse([], { INPOD_PORT_REUSE: 'yes' })),
      /^INPOD_PORT_REUSE=yes: expected true or false/,
    );
    assert.match(
      configError(() => parse([], { CONNECTION_TERMINATION_DEADLINE: '5' })),
      /^CONNECTION_TERMINATION_DEADLINE=5: expected a duration/,
    );
    assert.match(
      configError(() => parse(['--connection-termination-deadline', 'soon'])),
      /^--connection-termination-deadline=soon: /,
    );
    assert.match(
      configError(() => parse([], { TERMINATION_GRACE_PERIOD_SECONDS: '30s' })),
      /^TERMINATION_GRACE_PERIOD_SECONDS=30s: expected a whole number of seconds/,
    );
    assert.match(
      configError(() => parse([], { RUST_LOG: 'loud' })),
      /^RUST_LOG=loud: 'loud' is not/,
    );
    assert.match(
      configError(() => parse([], { PROXY_MODE: 'dedicated' })),
      /^PROXY_MODE=dedicated: .*shared/,
    );
    assert.match(
      configError(() => parse(['--workers', '0'])),
      /^--workers=0: /,
    );
    assert.match(
      configError(() => parse([], { ZTUNNEL_WORKER_THREADS: '4' })),
      /^ZTUNNEL_WORKER_THREADS=4: only 1/,
    );
    assert.match(
      configError(() => parse(['--metrics-addr', 'nowhere'])),
      /^--metrics-addr=nowhere: /,
    );
    assert.match(
      configError(() => parse(['--metrics-addr', '[::]:70000'])),
      /out of range/,
    );
    assert.match(
      configError(() => parse(['--admin-addr', 'example.com:80'])),
      /neither an IP address nor localhost/,
    );
  });

  test('an unknown flag is a usage error from the argument parser', () => {
    assert.throws(() => parse(['--inpod-socket', '/x']), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' });
    assert.throws(() => parse(['positional']), { code: 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' });
  });

  test('--help documents every flag with its environment variable', () => {
    const help = ztunnelHelp();
    for (const o of OPTIONS) {
      assert.ok(help.includes(`--${o.flag} `), `--${o.flag} in help`);
      if (o.env) assert.ok(help.includes(`env ${o.env}`), `${o.env} in help`);
    }
    for (const env of [
      'INPOD_UDS',
      'PACKET_MARK',
      'INPOD_PORT_REUSE',
      'LOCAL_XDS_PATH',
      'PROXY_MODE',
      'NODE_NAME',
    ]) {
      assert.ok(
        OPTIONS.some((o) => o.env === env),
        `${env} is configurable`,
      );
    }
  });
});
