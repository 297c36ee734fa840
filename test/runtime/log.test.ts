import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { formatLine, logger, setLogLevel, setLogSink } from '../../src/runtime/log.js';

afterEach(() => {
  setLogSink(process.stdout);
  setLogLevel('info');
});

test('lines have the shape of ztunnel (tracing) logs', () => {
  const line = formatLine('info', 'ztunnel::inpod::statemanager', 'pod received snapshot sent');
  assert.match(
    line,
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z {2}INFO ztunnel::inpod::statemanager: pod received snapshot sent\n$/,
  );
  assert.match(formatLine('error', 't', 'm'), /Z ERROR t: m\n$/);
});

test('fields follow the message, quoted when needed', () => {
  const line = formatLine('info', 'access', 'connection complete', {
    'src.addr': '10.0.0.1:5',
    reason: 'a b',
    n: 3,
  });
  assert.match(line, /connection complete src\.addr=10\.0\.0\.1:5 reason="a b" n=3\n$/);
});

test('levels filter per target prefix', () => {
  const lines: string[] = [];
  setLogSink({ write: (l: string) => void lines.push(l) });
  setLogLevel('warn');
  setLogLevel('debug', 'ztunnel::inpod');
  logger('ztunnel::inpod::statemanager').debug('shown');
  logger('ztunnel::proxy').info('hidden');
  logger('ztunnel::proxy').warn('shown too');
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /DEBUG ztunnel::inpod::statemanager: shown/);
});
