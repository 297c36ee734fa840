/**
 * The built plugin runs where it is built (issue 16): the checkout's package.json says "type":
 * "module", under which Node loaded the extension-less CommonJS bundle as ESM and it died with
 * `require is not defined`. It must also run once copied into a bin dir, as `cni-install` copies it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cniEnv, runCni } from './bundle.js';

const SCRIPT = fileURLToPath(new URL('../../../scripts/build-cni.mjs', import.meta.url));
const CHECKOUT_BUNDLE = fileURLToPath(new URL('../../../dist/ambit-cni', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ambit-cni-inplace-'));

after(() => rmSync(dir, { recursive: true, force: true }));

async function assertVersion(plugin: string): Promise<void> {
  const r = await runCni(plugin, cniEnv('VERSION'), '{"cniVersion":"1.0.0"}');
  assert.equal(r.code, 0, `${plugin}: ${r.stderr}`);
  assert.deepEqual(JSON.parse(r.stdout).supportedVersions, ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
}

describe('the ambit-cni bundle', () => {
  test('runs in place under a package.json of "type": "module", as in the checkout', async () => {
    const checkout = join(dir, 'checkout');
    mkdirSync(join(checkout, 'dist'), { recursive: true });
    writeFileSync(join(checkout, 'package.json'), '{"name":"ambit","type":"module"}\n');
    const plugin = join(checkout, 'dist', 'ambit-cni');
    execFileSync(process.execPath, [SCRIPT, '--outfile', plugin], { stdio: 'pipe' });
    await assertVersion(plugin);

    // What cni-install does: the file's bytes into each CNI bin dir (no package.json there).
    const bin = join(dir, 'opt-cni-bin');
    mkdirSync(bin);
    copyFileSync(plugin, join(bin, 'ambit-cni'));
    await assertVersion(join(bin, 'ambit-cni'));
  });

  test("the checkout's own dist/ambit-cni (npm run build) runs in place", async () => {
    assert.ok(existsSync(CHECKOUT_BUNDLE), `${CHECKOUT_BUNDLE} is not built`);
    await assertVersion(CHECKOUT_BUNDLE);
  });
});
