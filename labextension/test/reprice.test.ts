import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  Holdings,
  IOutputJSON,
  IOutputLike,
  IOutputList,
  TARGET,
  VERSION,
  ackMessage,
  applyUpdates,
  dropsMessage,
  holdsMessage,
  isRepriceMessage,
  metadataOf,
  parseUpdates,
  readoutId,
  readoutIds,
  recordId,
  replacement
} from '../src/reprice';

/** An output as `IOutputModel` shows one. */
interface IFakeOutput extends IOutputLike {
  data?: Record<string, unknown>;
}

/** An `IOutputAreaModel`-like list that records its `set` calls. */
class FakeList implements IOutputList<IFakeOutput> {
  constructor(public items: IFakeOutput[]) {}

  sets: number[] = [];

  get length(): number {
    return this.items.length;
  }

  get(index: number): IFakeOutput {
    return this.items[index];
  }

  set(index: number, value: IOutputJSON): void {
    this.sets.push(index);
    this.items[index] = {
      type: value.output_type,
      metadata: value.metadata,
      executionCount: value.execution_count,
      data: value.data
    };
  }
}

function readout(id: string, extra: Record<string, unknown> = {}, type = 'display_data'): IFakeOutput {
  return {
    type,
    metadata: { nbcarbon: { schema: 1, kind: 'cell', id, energy_j: 10, co2e_g: 1e-3, ...extra } },
    data: { 'text/plain': `old ${id}` },
    executionCount: type === 'execute_result' ? 7 : undefined
  };
}

function update(id: string, code = 'DE'): [string, Record<string, unknown>, Record<string, unknown>] {
  return [
    id,
    { 'text/plain': `new ${id} ${code}`, 'text/html': `<b>${code}</b>` },
    { nbcarbon: { schema: 1, kind: 'cell', id, region: { code } } }
  ];
}

/** A kernel's update message (the data of its `comm_msg`). */
function message(seq: number, updates: unknown[]): Record<string, unknown> {
  return { version: VERSION, target: TARGET, seq, updates };
}

describe('which outputs are readouts', () => {
  test('a record with kind cell, or no kind', () => {
    assert.equal(readoutId({ nbcarbon: { id: 'a', kind: 'cell' } }), 'a');
    assert.equal(readoutId({ nbcarbon: { id: 'b' } }), 'b');
  });

  test('not summaries, nor anything without a string id', () => {
    assert.equal(readoutId({ nbcarbon: { id: 's', kind: 'summary' } }), null);
    assert.equal(recordId({ nbcarbon: { id: 's', kind: 'summary' } }), 's');
    for (const m of [
      undefined,
      null,
      {},
      { nbcarbon: null },
      { nbcarbon: 'x' },
      { nbcarbon: ['a'] },
      { nbcarbon: { id: 3 } },
      { nbcarbon: { kind: 'cell' } },
      { other: { id: 'a' } },
      'nbcarbon',
      []
    ]) {
      assert.equal(readoutId(m), null, JSON.stringify(m));
      assert.equal(recordId(m), null, JSON.stringify(m));
    }
  });

  test('ids collected once each, in order', () => {
    const list = new FakeList([
      readout('a'),
      { type: 'stream', metadata: {} },
      readout('b'),
      { type: 'display_data', metadata: { nbcarbon: { id: 's', kind: 'summary' } } },
      readout('a')
    ]);
    assert.deepEqual(readoutIds(metadataOf([list, new FakeList([]), new FakeList([readout('c')])])), [
      'a',
      'b',
      'c'
    ]);
  });
});

describe('messages', () => {
  test('the frontend sends', () => {
    assert.equal(TARGET, 'nbcarbon.reprice');
    assert.equal(VERSION, 2);
    assert.deepEqual(holdsMessage(['a', 'b']), { version: 2, holds: ['a', 'b'] });
    assert.deepEqual(dropsMessage(['a']), { version: 2, drops: ['a'] });
    assert.deepEqual(ackMessage(4, 12), { version: 2, ack: 4, applied: 12 });
    assert.deepEqual(ackMessage(5, 0), { version: 2, ack: 5, applied: 0 }); // nothing held: still an answer
  });

  test("the kernel's messages are recognised by their target, whatever their version or shape", () => {
    for (const data of [
      message(1, [update('a')]),
      { target: TARGET },
      { version: 1, target: TARGET, seq: 1, updates: [] },
      { version: 3, target: TARGET },
      { target: TARGET, seq: 'x', updates: null }
    ]) {
      assert.ok(isRepriceMessage(data), JSON.stringify(data));
    }
  });

  test("other comms' messages are not ours, nor a version 1 message (no target)", () => {
    for (const data of [
      undefined,
      null,
      'nbcarbon.reprice',
      [TARGET],
      {},
      { method: 'update', state: { value: 3 }, buffer_paths: [] }, // an ipywidget's
      { version: 1, seq: 1, updates: [update('a')] },
      { version: 2, seq: 1, updates: [update('a')] },
      { version: 2, target: 'nbcarbon.other', seq: 1, updates: [] },
      { version: 2, target: ['nbcarbon.reprice'], seq: 1, updates: [] },
      { version: 2, target: null, seq: 1, updates: [] },
      { version: 2, nbcarbon: { target: TARGET } }
    ]) {
      assert.equal(isRepriceMessage(data), false, JSON.stringify(data));
      assert.equal(typeof parseUpdates(data), 'string', JSON.stringify(data));
    }
  });

  test('an update message read', () => {
    const read = parseUpdates(message(3, [update('a'), update('b')]));
    assert.ok(typeof read !== 'string');
    assert.equal(read.seq, 3);
    assert.deepEqual([...read.updates.keys()], ['a', 'b']);
    assert.equal(read.updates.get('a')?.data['text/html'], '<b>DE</b>');
    assert.equal(read.skipped, 0);
  });

  test('the last update of a record wins; malformed entries are skipped and counted', () => {
    const read = parseUpdates({
      version: 2,
      target: TARGET,
      seq: 0,
      updates: [
        update('a', 'PL'),
        ['b'],
        'c',
        ['d', 'text', {}],
        [5, {}, {}],
        ['e', {}, null],
        update('a', 'FR')
      ]
    });
    assert.ok(typeof read !== 'string');
    assert.deepEqual([...read.updates.keys()], ['a']);
    assert.equal(read.updates.get('a')?.data['text/html'], '<b>FR</b>');
    assert.equal(read.skipped, 5);
  });

  test('unknown versions and malformed messages are refused, never thrown', () => {
    for (const data of [
      null,
      'x',
      [],
      {},
      { version: 2, seq: 1, updates: [] }, // no target
      { version: 1, target: TARGET, seq: 1, updates: [] },
      { version: 3, target: TARGET, seq: 1, updates: [] },
      { version: '2', target: TARGET, seq: 1, updates: [] },
      { target: TARGET, seq: 1, updates: [] },
      { version: 2, target: TARGET, updates: [] },
      { version: 2, target: TARGET, seq: 1.5, updates: [] },
      { version: 2, target: TARGET, seq: '1', updates: [] },
      { version: 2, target: TARGET, seq: 1 },
      { version: 2, target: TARGET, seq: 1, updates: {} }
    ]) {
      assert.equal(typeof parseUpdates(data), 'string', JSON.stringify(data));
    }
    const refused = parseUpdates({ version: 1, target: TARGET, seq: 1, updates: [] });
    assert.equal(refused, 'unknown version 1');
    assert.ok(typeof parseUpdates(message(1, [])) !== 'string'); // an empty batch is a batch
  });
});

describe('applying updates', () => {
  test('every output of an updated record is replaced, in one pass', () => {
    const first = new FakeList([readout('a'), { type: 'stream', metadata: {} }, readout('b')]);
    const second = new FakeList([readout('c'), readout('a')]);
    const read = parseUpdates(message(1, [update('a'), update('c'), update('zz')]));
    assert.ok(typeof read !== 'string');
    assert.equal(applyUpdates([first, second], read.updates), 3);
    assert.deepEqual(first.sets, [0]);
    assert.deepEqual(second.sets, [0, 1]);
    assert.deepEqual(first.items[0].data, { 'text/plain': 'new a DE', 'text/html': '<b>DE</b>' });
    assert.equal(
      (
        (first.items[0].metadata as Record<string, Record<string, unknown>>).nbcarbon.region as {
          code: string;
        }
      ).code,
      'DE'
    );
    assert.deepEqual(first.items[2].data, { 'text/plain': 'old b' }); // not updated
    assert.equal(second.items[0].type, 'display_data');
  });

  test('an execute_result keeps its type and execution count', () => {
    const list = new FakeList([readout('a', {}, 'execute_result')]);
    assert.equal(applyUpdates([list], new Map([['a', { data: { x: 1 }, metadata: {} }]])), 1);
    assert.equal(list.items[0].type, 'execute_result');
    assert.equal(list.items[0].executionCount, 7);
    assert.deepEqual(replacement({ type: 'execute_result', metadata: {} }, { data: {}, metadata: {} }), {
      output_type: 'execute_result',
      data: {},
      metadata: {},
      execution_count: null
    });
  });

  test('outputs without data are never replaced; no updates, no writes', () => {
    const odd = { type: 'stream', metadata: { nbcarbon: { id: 'a' } } };
    const list = new FakeList([odd]);
    assert.equal(applyUpdates([list], new Map([['a', { data: {}, metadata: {} }]])), 0);
    assert.equal(replacement(odd, { data: {}, metadata: {} }), null);
    const other = new FakeList([readout('a')]);
    assert.equal(applyUpdates([other], new Map()), 0);
    assert.deepEqual(other.sets, []);
  });

  test('10,000 readouts in one pass', () => {
    const lists = Array.from({ length: 100 }, (_, c) =>
      Array.from({ length: 100 }, (_, i) => readout(`r${c * 100 + i}`))
    ).map(items => new FakeList(items));
    const updates = Array.from({ length: 10_000 }, (_, i) => update(`r${i}`));
    const read = parseUpdates(message(9, updates));
    assert.ok(typeof read !== 'string');
    assert.equal(applyUpdates(lists, read.updates), 10_000);
    assert.ok(lists.every(l => l.sets.length === 100));
  });
});

describe('what the kernel was told', () => {
  test('each id is sent once; a burst is one batch', () => {
    const h = new Holdings();
    h.markSent(['a']);
    h.note(['a', 'b', 'c', 'b']);
    assert.deepEqual([...h.pending], ['b', 'c']);
    assert.deepEqual(h.take(), { holds: ['b', 'c'], drops: [] });
    assert.deepEqual(h.take(), { holds: [], drops: [] });
    h.note(['c', 'd']);
    assert.deepEqual(h.take(), { holds: ['d'], drops: [] });
    assert.deepEqual([...h.sent].sort(), ['a', 'b', 'c', 'd']);
  });

  test('ids gone from the notebook are dropped; pending ones gone are forgotten', () => {
    const h = new Holdings();
    h.markSent(['a', 'b']);
    h.note(['c', 'd']);
    assert.deepEqual(h.take(new Set(['b', 'c'])), { holds: ['c'], drops: ['a'] });
    assert.deepEqual([...h.sent].sort(), ['b', 'c']);
    h.note(['a']); // shown again: held again
    assert.deepEqual(h.take(new Set(['a', 'b', 'c'])), { holds: ['a'], drops: [] });
  });

  test('reset forgets everything', () => {
    const h = new Holdings();
    h.markSent(['a']);
    h.note(['b']);
    h.reset();
    assert.equal(h.sent.size + h.pending.size, 0);
    h.note(['a']);
    assert.deepEqual(h.take(), { holds: ['a'], drops: [] });
  });
});
