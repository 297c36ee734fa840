/**
 * Whether the doctor expects ztunnel's SOCKS5 listener: ztunnel's /config_dump `socks5Addr` when the
 * dump has it (ambit's and Istio's do), else UNSTABLE_ENABLE_SOCKS5 in the ztunnel process's
 * environment, off unless `true` as ztunnel reads it (Istio's default: off, no 127.0.0.1:15080).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { socks5Setting } from '../../src/doctor/context.js';
import type { ConfigDump } from '../../src/ztunnel/admin/config-dump.js';

const dumpWith = (config: Record<string, unknown>) => ({ config }) as unknown as ConfigDump;

describe('the SOCKS5 setting of the ztunnel serving the pod', () => {
  const proc = mkdtempSync(join(tmpdir(), 'ambit-doctor-proc-'));
  after(() => rmSync(proc, { recursive: true, force: true }));
  const environ = (pid: number, vars: string[]) => {
    mkdirSync(join(proc, String(pid)));
    writeFileSync(join(proc, String(pid), 'environ'), `${vars.join('\0')}\0`);
  };

  test("the dump's socks5Addr decides: an address is on, null is off (whatever the environment says)", () => {
    environ(7, ['UNSTABLE_ENABLE_SOCKS5=true']);
    assert.equal(socks5Setting(dumpWith({ socks5Addr: '127.0.0.1:15080' }), 7, proc)?.enabled, true);
    const off = socks5Setting(dumpWith({ socks5Addr: null }), 7, proc);
    assert.equal(off?.enabled, false);
    assert.match(off!.source, /config_dump: socks5Addr null/);
  });

  test("without socks5Addr in the dump, the process environment: only 'true' turns it on; unset is off", () => {
    environ(8, ['PATH=/bin', 'UNSTABLE_ENABLE_SOCKS5=true', 'HOME=/']);
    environ(9, ['PATH=/bin']);
    environ(10, ['UNSTABLE_ENABLE_SOCKS5=1']);
    assert.equal(socks5Setting(dumpWith({ proxyMode: 'Shared' }), 8, proc)?.enabled, true);
    assert.equal(socks5Setting(undefined, 8, proc)?.enabled, true);
    const unset = socks5Setting(undefined, 9, proc);
    assert.equal(unset?.enabled, false);
    assert.match(unset!.source, /UNSTABLE_ENABLE_SOCKS5 unset/);
    assert.equal(socks5Setting(undefined, 10, proc)?.enabled, false);
  });

  test('neither a dump field nor a readable environment: unknown', () => {
    assert.equal(socks5Setting(undefined, undefined, proc), undefined);
    assert.equal(socks5Setting(dumpWith({}), 12345, proc), undefined);
  });
});
