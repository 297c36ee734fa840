import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type OptionSpec,
  optionError,
  parseBool,
  parseDurationMs,
  parseMark,
  readOptions,
} from '../../src/runtime/options.js';

const SPECS: readonly OptionSpec[] = [
  { flag: 'mark', env: 'PACKET_MARK', default: '1337', help: 'a mark' },
  { flag: 'name', env: 'NODE_NAME', help: 'no default' },
  { flag: 'flag-only', help: 'no variable' },
];

describe('options', () => {
  test('a flag wins over its variable, a variable over the default', () => {
    const read = readOptions(SPECS, ['--mark', '0x10'], { PACKET_MARK: '5', NODE_NAME: 'n1' });
    assert.deepEqual(read('mark'), { text: '0x10', source: '--mark', explicit: true });
    assert.deepEqual(read('name'), { text: 'n1', source: 'NODE_NAME', explicit: true });
    assert.equal(read('flag-only'), undefined);
  });

  test('a blank variable is unset; a default names the variable it stands for', () => {
    const read = readOptions(SPECS, [], { PACKET_MARK: '  ', NODE_NAME: '' });
    assert.deepEqual(read('mark'), { text: '1337', source: 'PACKET_MARK', explicit: false });
    assert.equal(read('name'), undefined);
  });

  test('unknown flags and positionals are parseArgs errors', () => {
    assert.throws(() => readOptions(SPECS, ['--bogus', 'x'], {}), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' });
    assert.throws(() => readOptions(SPECS, ['extra'], {}), { code: 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' });
  });

  test('errors name the source under the given code', () => {
    const err = optionError({ text: 'x', source: 'PACKET_MARK', explicit: true }, 'bad');
    assert.equal(err.code, 'ERR_CONFIG');
    assert.equal(err.message, 'PACKET_MARK=x: bad');
  });

  test('values', () => {
    assert.equal(parseBool('TRUE'), true);
    assert.equal(parseBool('0'), false);
    assert.equal(parseBool('yes'), undefined);
    assert.equal(parseDurationMs('1.5m'), 90_000);
    assert.equal(parseDurationMs('5'), undefined);
    assert.equal(parseMark('0x539'), 1337);
    assert.equal(parseMark('0'), undefined);
    assert.equal(parseMark('4294967296'), undefined);
  });
});
