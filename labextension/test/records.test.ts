import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  AS_RECORDED,
  IFound,
  IRecord,
  RecordError,
  cellCosts,
  co2eG,
  collect,
  parseRecord,
  pricedCo2e,
  rankCells,
  topLevel,
  totals
} from '../src/records';
import { REGIONS } from '../src/regions.generated';

const FIXTURES = join(__dirname, '..', '..', 'test', 'fixtures');
const SE = {
  code: 'SE',
  name: 'Sweden',
  g_per_kwh: 35.82,
  year: 2024,
  source: 'Ember Yearly Electricity Data 2024',
  basis: 'lifecycle',
  chosen_by: 'command'
};

function raw(id: string, energy = 10, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schema: 1,
    kind: 'cell',
    id,
    cell_id: null,
    label: null,
    execution_count: 1,
    started_at: '2026-11-30T10:00:00+00:00',
    duration_s: 1,
    status: 'ok',
    components: [
      {
        component: 'cpu',
        device: 'process tree',
        method: 'cpu-time-model',
        energy_j: energy,
        mean_power_w: energy
      }
    ],
    energy_j: energy,
    pue: 1,
    region: SE,
    co2e_g: co2eG(energy, 1, SE.g_per_kwh),
    attribution: 'process',
    warnings: [],
    nbcarbon_version: '0.1.0',
    parent_id: null,
    ...extra
  };
}

/** A cpu component charged `fraction` of a package counter's `machine` joules, by CPU time. */
function cpuShare(
  energy: number,
  fraction: number,
  machine: number,
  device = 'package-0'
): Record<string, unknown> {
  return {
    component: 'cpu',
    device,
    method: 'rapl-counter',
    energy_j: energy,
    mean_power_w: energy,
    share: { basis: 'cpu-time', fraction, machine_energy_j: machine }
  };
}

/** A record whose components are `components`, its energy their sum, attributed as a share. */
function shared(id: string, components: Record<string, unknown>[], extra: Record<string, unknown> = {}) {
  const energy = components.reduce((s, c) => s + (c.energy_j as number), 0);
  return raw(id, energy, {
    components,
    energy_j: energy,
    co2e_g: co2eG(energy, 1, SE.g_per_kwh),
    attribution: 'share',
    ...extra
  });
}

const meta = (record: unknown): Record<string, unknown> => ({ nbcarbon: record });

function found(...records: Record<string, unknown>[]): IFound[] {
  return collect(records.map(r => ({ outputs: [meta(r)] }))).records;
}

const close = (a: number, b: number): void =>
  assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${a} != ${b}`);

describe('parseRecord', () => {
  test('reads a valid record; absent parent_id is top level', () => {
    const r = raw('a');
    delete r.parent_id;
    const rec = parseRecord(r);
    assert.equal(rec.id, 'a');
    assert.equal(rec.parent_id, null);
    assert.equal(rec.components[0].method, 'cpu-time-model');
    assert.equal(rec.iterations, null);
  });

  test('ignores unknown fields, reads iterations', () => {
    const rec = parseRecord(
      raw('a', 10, {
        future_field: 1,
        iterations: { label: 'epoch', duration_s: [1, 2], energy_j: [3, 4], statuses: { '1': 'error' } }
      })
    );
    assert.deepEqual(rec.iterations, { label: 'epoch', duration_s: [1, 2], energy_j: [3, 4] });
  });

  test('a component without a share (or a null one) has share null', () => {
    assert.equal(parseRecord(raw('a')).components[0].share, null);
    const rec = parseRecord(raw('a', 10, { components: [{ ...cpuShare(10, 1, 10), share: null }] }));
    assert.equal(rec.components[0].share, null);
  });

  test('reads a share of a machine-wide counter, and the record attributed as a share', () => {
    const rec = parseRecord(shared('a', [cpuShare(15.2, 0.38, 40)]));
    assert.equal(rec.attribution, 'share');
    assert.equal(rec.components[0].energy_j, 15.2);
    assert.deepEqual(rec.components[0].share, { basis: 'cpu-time', fraction: 0.38, machine_energy_j: 40 });
    for (const basis of ['gpu-utilization', 'gpu-processes']) {
      const gpu = {
        ...cpuShare(1, 0.25, 4, 'gpu0'),
        component: 'gpu',
        method: 'nvml-counter',
        share: { basis, fraction: 0.25, machine_energy_j: 4 }
      };
      assert.equal(parseRecord(shared('g', [gpu])).components[0].share!.basis, basis);
    }
  });

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['newer schema', { schema: 2 }, /newer than this nbcarbon/],
    ['no schema', { schema: 'x' }, /no integer 'schema'/],
    ['summary kind', { kind: 'summary' }, /kind must be 'cell'/],
    ['negative energy', { energy_j: -1 }, /finite number >= 0/],
    ['boolean number', { pue: true }, /must be a number/],
    ['missing region', { region: undefined }, /must be dict|missing/],
    ['bad status', { status: 'done' }, /status must be one of/],
    ['bad warnings', { warnings: [1] }, /list of strings/],
    ['mistyped parent', { parent_id: 3 }, /'parent_id' must be str/],
    ['float count', { execution_count: 1.5 }, /'execution_count' must be int/],
    [
      'bad method',
      { components: [{ component: 'cpu', device: 'x', method: 'guess', energy_j: 1, mean_power_w: 1 }] },
      /component 0: component method/
    ],
    [
      'bad component',
      {
        components: [
          { component: 'disk', device: 'x', method: 'cpu-time-model', energy_j: 1, mean_power_w: 1 }
        ]
      },
      /component must be one of/
    ],
    [
      'unknown share basis',
      {
        components: [
          { ...cpuShare(1, 0.5, 2), share: { basis: 'memory', fraction: 0.5, machine_energy_j: 2 } }
        ]
      },
      /component 0: share basis must be one of cpu-time, gpu-utilization, gpu-processes/
    ],
    [
      'share fraction above 1',
      { components: [cpuShare(1, 1.5, 2)] },
      /share fraction must be from 0 to 1, not 1.5/
    ],
    [
      'negative machine energy',
      { components: [cpuShare(1, 0.5, -2)] },
      /'machine_energy_j' must be a finite/
    ],
    [
      'share without machine energy',
      { components: [{ ...cpuShare(1, 0.5, 2), share: { basis: 'cpu-time', fraction: 0.5 } }] },
      /missing the field 'machine_energy_j'/
    ],
    [
      'share not an object',
      { components: [{ ...cpuShare(1, 0.5, 2), share: 0.5 }] },
      /'share' must be a JSON object/
    ],
    [
      'uneven iterations',
      { iterations: { label: 'e', duration_s: [1], energy_j: [1, 2] } },
      /differ in length/
    ],
    [
      'bad iteration status',
      { iterations: { duration_s: [1], energy_j: [1], statuses: { x: 'ok' } } },
      /statuses/
    ]
  ];
  for (const [name, change, message] of bad) {
    test(`rejects ${name}`, () => {
      const r = { ...raw('a'), ...change };
      for (const [k, v] of Object.entries(change)) {
        if (v === undefined) {
          delete r[k];
        }
      }
      assert.throws(
        () => parseRecord(r),
        (err: Error) => err instanceof RecordError && message.test(err.message)
      );
    });
  }
});

describe('collect', () => {
  test('skips outputs without a record, counts summaries apart, lists problems with their cell', () => {
    const c = collect([
      { outputs: [undefined, {}, { other: 1 }, meta(raw('a'))] },
      { outputs: [meta({ schema: 1, kind: 'summary', energy_j: 1e9 }), meta({ ...raw('b'), schema: 9 })] },
      { outputs: [] }
    ]);
    assert.equal(c.records.length, 1);
    assert.equal(c.summaries, 1);
    assert.equal(c.problems.length, 1);
    assert.match(c.problems[0], /^cell 1: record has schema 9/);
  });

  test('duplicates of one record id count once: the first place, the last content', () => {
    const c = collect([
      { outputs: [meta(raw('a', 10))] },
      { outputs: [meta(raw('b', 5)), meta(raw('a', 10, { pue: 2, co2e_g: 99 }))] }
    ]);
    assert.equal(c.records.length, 2);
    assert.equal(c.records[0].cell, 0);
    assert.equal(c.records[0].record.pue, 2);
    assert.equal(totals(c.records).co2e_g, 99 + co2eG(5, 1, SE.g_per_kwh));
  });
});

describe('top level', () => {
  test('no parent, a parent not among the records, and a self-parent are top level', () => {
    const f = found(
      raw('cell'),
      raw('loop', 4, { parent_id: 'cell' }),
      raw('inner', 1, { parent_id: 'loop' }),
      raw('orphan', 2, { parent_id: 'gone' }),
      raw('self', 3, { parent_id: 'self' })
    );
    assert.deepEqual(
      topLevel(f).map(x => x.record.id),
      ['cell', 'orphan', 'self']
    );
    const t = totals(f);
    assert.equal(t.cells, 3);
    assert.equal(t.records, 5);
    assert.equal(t.energy_j, 10 + 2 + 3);
  });
});

describe('totals', () => {
  test('components add up by name with their methods and kinds', () => {
    const r = raw('a', 0, {
      components: [
        { component: 'memory', device: 'process tree', method: 'memory-model', energy_j: 1, mean_power_w: 1 },
        { component: 'cpu', device: 'package-0', method: 'rapl-counter', energy_j: 5, mean_power_w: 1 },
        {
          component: 'cpu',
          device: 'dask:w1/package-0',
          method: 'cpu-time-model',
          energy_j: 2,
          mean_power_w: 1
        }
      ],
      energy_j: 8
    });
    const t = totals(found(r, raw('b', 3)));
    assert.deepEqual(
      t.components.map(c => [c.component, c.energy_j]),
      [
        ['cpu', 10],
        ['memory', 1]
      ]
    );
    assert.deepEqual(
      t.components[0].methods.map(m => [m.method, m.kind, m.energy_j]),
      [
        ['rapl-counter', 'measured', 5],
        ['cpu-time-model', 'estimated', 5]
      ]
    );
  });

  test('shares: totals add the charged energy, never the machine counter; one device, one line', () => {
    const f = found(
      shared('a', [cpuShare(15.2, 0.38, 40)]),
      shared('b', [cpuShare(10, 0.5, 20), cpuShare(3, 0.1, 30, 'package-1')]),
      raw('c', 2)
    );
    const t = totals(f);
    close(t.energy_j, 15.2 + 13 + 2);
    close(t.co2e_g, co2eG(30.2, 1, SE.g_per_kwh));
    const [cpu] = t.components;
    close(cpu.energy_j, 30.2);
    assert.deepEqual(
      cpu.shares.map(s => [s.device, s.bases, s.machine_energy_j]),
      [
        ['package-0', ['cpu-time'], 60],
        ['package-1', ['cpu-time'], 30]
      ]
    );
    close(cpu.shares[0].energy_j, 25.2);
    // over two windows: the charged part of both counters' energy, 0.38 * 40 + 0.5 * 20 of 60
    close(cpu.shares[0].fraction, 25.2 / 60);
    assert.equal(cpu.shares[1].fraction, 0.1);
  });

  test('shares: one window keeps its recorded fraction; bases of a device are listed in order', () => {
    const gpu = (fraction: number, basis: string) => ({
      component: 'gpu',
      device: 'gpu0',
      method: 'nvml-counter',
      energy_j: fraction * 100,
      mean_power_w: 1,
      share: { basis, fraction, machine_energy_j: 100 }
    });
    const one = totals(found(shared('a', [cpuShare(1, 1 / 3, 3)])));
    assert.equal(one.components[0].shares[0].fraction, 1 / 3);
    const two = totals(
      found(shared('a', [gpu(0.2, 'gpu-processes')]), shared('b', [gpu(0.4, 'gpu-utilization')]))
    );
    assert.deepEqual(two.components[0].shares[0].bases, ['gpu-utilization', 'gpu-processes']);
    close(two.components[0].shares[0].fraction, 0.3);
    assert.deepEqual(totals(found(raw('x'))).components[0].shares, []);
  });

  test("shares: a cell's cost lists its own shares, nested windows not added again", () => {
    const f = found(
      shared('cell', [cpuShare(8, 0.4, 20)]),
      shared('loop', [cpuShare(6, 0.5, 12)], { parent_id: 'cell' })
    );
    const cost = cellCosts(f).get(0)!;
    assert.equal(cost.energy_j, 8);
    assert.deepEqual(
      cost.components[0].shares.map(s => [s.energy_j, s.fraction, s.machine_energy_j]),
      [[8, 0.4, 20]]
    );
  });

  test('re-pricing to another region scales CO2e by the ratio of intensities', () => {
    const f = found(raw('a', 24.4), raw('b', 100, { parent_id: null }));
    const pl = REGIONS.find(r => r.code === 'PL')!;
    const before = totals(f, AS_RECORDED).co2e_g;
    const after = totals(f, { region: pl, pue: null }).co2e_g;
    close(after / before, pl.g_per_kwh / SE.g_per_kwh);
    close(totals(f, { region: null, pue: 1.5 }).co2e_g, before * 1.5);
    close(totals(f, { region: pl, pue: 2 }).co2e_g, co2eG(124.4, 2, pl.g_per_kwh));
  });

  test('as recorded shows the stored CO2e, even where the record was priced by hand', () => {
    const rec = parseRecord(raw('a', 10, { co2e_g: 42 }));
    assert.equal(pricedCo2e(rec, AS_RECORDED), 42);
  });
});

describe('cells', () => {
  const f = found(
    raw('small', 1, { execution_count: 1 }),
    raw('big', 50),
    raw('mid', 10),
    raw('nested', 5, { parent_id: 'big' })
  );

  test('a cell holding only nested records shows their cost, marked nested', () => {
    const costs = cellCosts(f);
    assert.equal(costs.get(3)!.nestedOnly, true);
    assert.equal(costs.get(3)!.energy_j, 5);
    assert.equal(costs.get(1)!.nestedOnly, false);
  });

  test('ranked by CO2e, nested-only cells last', () => {
    assert.deepEqual(
      rankCells(f).map(c => c.cell),
      [1, 2, 0, 3]
    );
  });

  test('records of one cell add up', () => {
    const c = collect([
      { outputs: [meta(raw('x', 2)), meta(raw('y', 3)), meta(raw('z', 4, { parent_id: 'x' }))] }
    ]);
    const cost = cellCosts(c.records).get(0)!;
    assert.equal(cost.energy_j, 5);
    assert.deepEqual(
      cost.nested.map((r: IRecord) => r.id),
      ['z']
    );
  });
});

describe('the same totals as nbcarbon report', () => {
  test('test/fixtures/tree.ipynb', () => {
    const nb = JSON.parse(readFileSync(join(FIXTURES, 'tree.ipynb'), 'utf8'));
    const expected = JSON.parse(readFileSync(join(FIXTURES, 'tree.expected.json'), 'utf8'));
    const c = collect(
      nb.cells.map((cell: { outputs?: { metadata?: unknown }[] }) => ({
        outputs: (cell.outputs ?? []).map(o => o.metadata)
      }))
    );
    const t = totals(c.records);
    assert.equal(t.cells, expected.total.cells);
    assert.equal(c.records.length, expected.rows);
    assert.equal(c.problems.length, expected.problems);
    close(t.energy_j, expected.total.energy_j);
    close(t.co2e_g, expected.total.co2e_g);
    close(t.duration_s, expected.total.duration_s);
    assert.equal(c.summaries, 1);
  });
});
