/**
 * Fake CNI plugins for the runtime's unit tests: small Node scripts written into a temp dir and
 * executed for real. Each appends what it received (CNI_* env and stdin config) to the file named
 * by its config's `log` key, and behaves as its config's `mode` says.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SCRIPT = `#!${process.execPath}
const fs = require('node:fs');
const type = require('node:path').basename(process.argv[1]);
const conf = JSON.parse(fs.readFileSync(0, 'utf8'));
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('CNI_')));
const mode = (conf.modes && conf.modes[type + ':' + env.CNI_COMMAND]) || 'ok';
if (conf.log) fs.appendFileSync(conf.log, JSON.stringify({ type, env, conf }) + '\\n');
if (mode === 'fail') {
  process.stdout.write(JSON.stringify({ cniVersion: '1.0.0', code: 7, msg: 'bad range', details: 'subnet 10.0.0.0/33' }));
  process.exit(1);
}
if (mode === 'crash') { process.stderr.write('panic: boom\\n'); process.exit(3); }
if (mode === 'badjson') { process.stdout.write('this is not json'); process.exit(0); }
if (mode === 'hang') { setInterval(() => {}, 1000); return; }
if (env.CNI_COMMAND === 'VERSION') {
  process.stdout.write(JSON.stringify({ cniVersion: '1.0.0', supportedVersions: ['0.4.0', '1.0.0'] }));
  process.exit(0);
}
if (env.CNI_COMMAND !== 'ADD') process.exit(0);
const result = conf.prevResult || { cniVersion: conf.cniVersion, interfaces: [], ips: [] };
result.interfaces = [...(result.interfaces || []), { name: type }];
process.stdout.write(JSON.stringify(result));
`;

export interface PluginCall {
  type: string;
  env: Record<string, string>;
  conf: Record<string, unknown>;
}

export class FakePlugins {
  readonly dir: string;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'ambit-cni-test-'));
  }

  /** Writes the fake plugin as `<subdir>/<type>` (executable) and returns that dir. */
  add(type: string, subdir = 'bin'): string {
    const dir = join(this.dir, subdir);
    mkdirSync(dir, { recursive: true });
    const file = join(dir, type);
    writeFileSync(file, SCRIPT);
    chmodSync(file, 0o755);
    return dir;
  }

  /** The calls recorded in `log`, in the order the plugins ran. */
  calls(log: string): PluginCall[] {
    let text = '';
    try {
      text = readFileSync(log, 'utf8');
    } catch {}
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as PluginCall);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
