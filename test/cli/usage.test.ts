/**
 * Usage errors read the same in every command (issue 16): exit 2, one clean line (not Node's
 * parser text with its unbalanced quotes), and the --help hint naming the command as it was run
 * (`bin/ambit`, which a clone has, rather than a bare `ambit`, which it may not). Runs the real
 * bin/ambit from the checkout, as a user of a clone does.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
// Only node's directory and the system's: no `ambit` of another checkout on the PATH.
const PATH = `${dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`;

function binAmbit(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('bin/ambit', args, {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, PATH, AMBIT_LAB: '' },
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every command `ambit --help` lists, with the arguments that reach its option parser. */
const BOGUS: Record<string, string[][]> = {
  agent: [[]],
  'cni-install': [[]],
  'cni-uninstall': [[]],
  'control-plane': [[]],
  demo: [[]],
  doctor: [['ambient-demo/sleep']],
  lab: [
    ['up'],
    ['down'],
    ['status'],
    ['exec', 'ambient-demo/sleep'],
    ['pod', 'add', 'ambient-demo/x'],
    ['pod', 'del', 'ambient-demo/x'],
    ['logs', 'ztunnel'],
    ['start', 'agent'],
    ['stop', 'agent'],
    ['restart', 'agent'],
  ],
  'lab-apiserver': [[]],
  redirect: [['apply']],
  ztunnel: [[]],
};

describe('usage errors', () => {
  test('the table covers every command ambit --help lists', () => {
    const help = binAmbit(['--help']);
    assert.equal(help.code, 0, help.stderr);
    const listed = help.stdout
      .split('Commands:\n')[1]!
      .split('\n')
      .map((l) => /^ {2}(\S+) /.exec(l)?.[1])
      .filter((c): c is string => c !== undefined);
    assert.deepEqual(listed.sort(), Object.keys(BOGUS).sort());
  });

  for (const [command, cases] of Object.entries(BOGUS)) {
    for (const args of cases) {
      // `lab exec` takes options only before its `--`.
      const withBogus = [command, ...args, '--bogus', ...(args[0] === 'exec' ? ['--', 'true'] : [])];
      test(`${withBogus.join(' ')}: exit 2, "unknown option '--bogus'" and the help hint`, () => {
        const r = binAmbit(withBogus);
        assert.equal(r.code, 2, r.stderr);
        assert.equal(
          r.stderr,
          `ambit ${command}: unknown option '--bogus'\nRun 'bin/ambit ${command} --help' for usage.\n`,
        );
        assert.equal(r.stdout, '');
      });
    }
  }

  test('bad values, missing values, stray arguments: exit 2 in every command, the hint included', () => {
    const cases: [string[], RegExp][] = [
      [['lab', 'up', '--nodes', '0'], /--nodes must be an integer from 1 to 32 \(got 0\) \[LAB_BAD_NODES\]/],
      [['lab', 'up', '--name', 'Bad'], /invalid lab name 'Bad'.*\[LAB_BAD_NAME\]/],
      [['lab', 'up', '--pod-cidr', '10.0.0.0/33'], /\[LAB_BAD_CIDR\]/],
      [['lab', 'logs', 'frontend'], /unknown component 'frontend'.*\[LAB_BAD_COMPONENT\]/],
      [['lab', 'status', '--name'], /^ambit lab: option '--name' needs a value$/m],
      [['lab', 'status', '--json=yes'], /^ambit lab: option '--json' takes no value$/m],
      [['lab', 'status', 'extra'], /^ambit lab: unexpected argument 'extra'$/m],
      [['lab', 'frobnicate'], /unknown lab subcommand 'frobnicate'/],
      [['doctor', 'a/b/c'], /invalid pod 'a\/b\/c'.*\[LAB_BAD_POD\]/],
      [['doctor', '--backend', 'pf', 'a/b'], /use --backend iptables or --backend nftables/],
      [['redirect', 'apply', '--netns', '/x', '--backend', 'pf'], /use --backend iptables/],
      [['agent', '--ztunnel-ready-timeout'], /^ambit agent: /m],
      [['cni-install', 'extra'], /^ambit cni-install: unexpected argument 'extra'$/m],
    ];
    for (const [args, message] of cases) {
      const r = binAmbit(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
      assert.match(
        r.stderr,
        new RegExp(`Run 'bin/ambit ${args[0]} --help' for usage\\.\\n$`),
        args.join(' '),
      );
    }
  });

  test('an unknown command, or none, prints the command list and exits 2', () => {
    const unknown = binAmbit(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^ambit: unknown command 'frobnicate'\n\nUsage: bin\/ambit <command>/);
    assert.equal(binAmbit([]).code, 2);
    assert.equal(binAmbit(['lab']).code, 2);
  });
});
