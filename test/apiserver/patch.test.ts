import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Json, jsonPatch, mergePatch, strategicMergePatch } from '../../src/lab/apiserver/patch.js';

describe('JSON merge patch (RFC 7386)', () => {
  // The examples of RFC 7386 appendix A.
  const cases: [Json, Json, Json][] = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [
      ['a', 'b'],
      ['c', 'd'],
      ['c', 'd'],
    ],
    [{ a: 'b' }, ['c'], ['c']],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  cases.forEach(([target, patch, expected], i) => {
    test(`RFC 7386 example ${i + 1}`, () => assert.deepEqual(mergePatch(target, patch), expected));
  });

  test('annotation set and removal as the node agent sends them', () => {
    const pod: Json = { metadata: { annotations: { keep: 'x', 'ambient.istio.io/redirection': 'pending' } } };
    const enabled = mergePatch(pod, {
      metadata: { annotations: { 'ambient.istio.io/redirection': 'enabled' } },
    });
    assert.deepEqual(enabled, {
      metadata: { annotations: { keep: 'x', 'ambient.istio.io/redirection': 'enabled' } },
    });
    assert.deepEqual(
      mergePatch(enabled, { metadata: { annotations: { 'ambient.istio.io/redirection': null } } }),
      {
        metadata: { annotations: { keep: 'x' } },
      },
    );
  });
});

describe('strategic merge patch', () => {
  test('maps merge like a merge patch', () => {
    assert.deepEqual(
      strategicMergePatch(
        { metadata: { labels: { a: '1', b: '2' } } },
        { metadata: { labels: { b: null, c: '3' } } },
      ),
      {
        metadata: { labels: { a: '1', c: '3' } },
      },
    );
  });

  test('status.conditions merge by type; other conditions stay', () => {
    const target: Json = {
      status: {
        conditions: [
          { type: 'Ready', status: 'False' },
          { type: 'Initialized', status: 'True' },
        ],
      },
    };
    const out = strategicMergePatch(target, {
      status: {
        conditions: [
          { type: 'Ready', status: 'True' },
          { type: 'PodScheduled', status: 'True' },
        ],
      },
    });
    assert.deepEqual(out, {
      status: {
        conditions: [
          { type: 'Ready', status: 'True' },
          { type: 'Initialized', status: 'True' },
          { type: 'PodScheduled', status: 'True' },
        ],
      },
    });
  });

  test('$patch: delete removes one list element; $patch: replace replaces a map', () => {
    const target: Json = {
      spec: {
        containers: [
          { name: 'a', image: '1' },
          { name: 'b', image: '2' },
        ],
      },
      metadata: { labels: { x: '1' } },
    };
    const out = strategicMergePatch(target, {
      spec: { containers: [{ name: 'a', $patch: 'delete' }] },
      metadata: { labels: { $patch: 'replace', y: '2' } },
    });
    assert.deepEqual(out, {
      spec: { containers: [{ name: 'b', image: '2' }] },
      metadata: { labels: { y: '2' } },
    });
  });

  test('finalizers merge as a set; lists without a merge key are replaced', () => {
    const out = strategicMergePatch(
      { metadata: { finalizers: ['a'] }, spec: { args: ['x', 'y'] } },
      { metadata: { finalizers: ['b', 'a'] }, spec: { args: ['z'] } },
    );
    assert.deepEqual(out, { metadata: { finalizers: ['a', 'b'] }, spec: { args: ['z'] } });
  });
});

describe('JSON patch (RFC 6902)', () => {
  const doc: Json = { metadata: { labels: { a: '1' } }, list: [1, 2, 3] };

  test('add, replace, remove, move, copy, test', () => {
    const out = jsonPatch(doc, [
      { op: 'test', path: '/metadata/labels/a', value: '1' },
      { op: 'add', path: '/metadata/labels/b', value: '2' },
      { op: 'replace', path: '/metadata/labels/a', value: '9' },
      { op: 'add', path: '/list/1', value: 7 },
      { op: 'add', path: '/list/-', value: 8 },
      { op: 'remove', path: '/list/0' },
      { op: 'copy', from: '/metadata/labels/b', path: '/copied' },
      { op: 'move', from: '/copied', path: '/moved' },
    ]);
    assert.deepEqual(out, { metadata: { labels: { a: '9', b: '2' } }, list: [7, 2, 3, 8], moved: '2' });
    assert.deepEqual(doc, { metadata: { labels: { a: '1' } }, list: [1, 2, 3] }, 'the input is not modified');
  });

  test('~1 in a pointer is a slash (annotation keys)', () => {
    const out = jsonPatch({ metadata: { annotations: {} } }, [
      { op: 'add', path: '/metadata/annotations/ambient.istio.io~1redirection', value: 'enabled' },
    ]);
    assert.deepEqual(out, { metadata: { annotations: { 'ambient.istio.io/redirection': 'enabled' } } });
  });

  test('a failing test op or a missing path is PATCH_FAILED; bad shapes are PATCH_MALFORMED', () => {
    assert.throws(() => jsonPatch(doc, [{ op: 'test', path: '/metadata/labels/a', value: '2' }]), {
      code: 'PATCH_FAILED',
    });
    assert.throws(() => jsonPatch(doc, [{ op: 'remove', path: '/nope/x' }]), { code: 'PATCH_FAILED' });
    assert.throws(() => jsonPatch(doc, [{ op: 'replace', path: '/nope', value: 1 }]), {
      code: 'PATCH_FAILED',
    });
    assert.throws(() => jsonPatch(doc, { op: 'add' }), { code: 'PATCH_MALFORMED' });
    assert.throws(() => jsonPatch(doc, [{ op: 'frobnicate', path: '/a' }]), { code: 'PATCH_MALFORMED' });
    assert.throws(() => jsonPatch(doc, [{ op: 'add', path: 'no-slash', value: 1 }]), {
      code: 'PATCH_MALFORMED',
    });
  });
});
