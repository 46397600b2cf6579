import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  cellName,
  componentLines,
  formatCost,
  formatDuration,
  formatEnergy,
  formatFixed,
  formatG,
  formatMass,
  formatPercent,
  howObtained,
  pricingWords,
  shareBasisWords,
  shareLine,
  sharesNote,
  shownLabel
} from '../src/format';
import { AS_RECORDED, IComponentTotal, IRecord, SHARE_BASES } from '../src/records';

// [value, format(v, '.3g'), readout.format_energy(v), readout.format_mass(v)], printed by Python.
const PYTHON: [number, string, string, string][] = [
  [0, '0', '0 J (0 mWh)', '0 mg'],
  [1e-9, '1e-09', '1e-09 J (2.78e-10 mWh)', '1e-06 mg'],
  [0.000123456, '0.000123', '0.000123 J (3.43e-05 mWh)', '0.123 mg'],
  [0.00099996, '0.001', '0.001 J (0.000278 mWh)', '1 mg'],
  [0.0123, '0.0123', '0.0123 J (0.00342 mWh)', '12.3 mg'],
  [0.5, '0.5', '0.5 J (0.139 mWh)', '500 mg'],
  [0.9995, '1', '1 J (0.278 mWh)', '1e+03 mg'],
  [0.99996, '1', '1 J (0.278 mWh)', '1e+03 mg'],
  [1, '1', '1 J (0.278 mWh)', '1 g'],
  [9.995, '9.99', '9.99 J (2.78 mWh)', '9.99 g'],
  [24.4, '24.4', '24.4 J (6.78 mWh)', '24.4 g'],
  [24.35, '24.4', '24.4 J (6.76 mWh)', '24.4 g'],
  [99.95, '100', '100 J (27.8 mWh)', '100 g'],
  [100, '100', '100 J (27.8 mWh)', '100 g'],
  [123.456, '123', '123 J (34.3 mWh)', '123 g'],
  [999.4, '999', '999 J (278 mWh)', '999 g'],
  [999.6, '1e+03', '1e+03 J (278 mWh)', '1e+03 g'],
  [1000, '1e+03', '1 kJ (278 mWh)', '1 kg'],
  [12345.6, '1.23e+04', '12.3 kJ (3.43 Wh)', '12.3 kg'],
  [999999, '1e+06', '1e+03 kJ (278 Wh)', '1e+03 kg'],
  [1e6, '1e+06', '1 MJ (278 Wh)', '1e+03 kg'],
  [2.5e8, '2.5e+08', '250 MJ (69.4 kWh)', '2.5e+05 kg'],
  [3e9, '3e+09', '3 GJ (833 kWh)', '3e+06 kg'],
  [7.2e12, '7.2e+12', '7.2e+03 GJ (2e+06 kWh)', '7.2e+09 kg']
];

describe('numbers as the Python readouts print them', () => {
  for (const [value, g, energy, mass] of PYTHON) {
    test(`${value}`, () => {
      assert.equal(formatG(value), g);
      assert.equal(formatEnergy(value), energy);
      assert.equal(formatMass(value), mass);
    });
  }

  test('exact ties round to even, as Python does', () => {
    assert.equal(formatG(1.125), '1.12');
    assert.equal(formatG(24.25), '24.2');
    assert.equal(formatG(0.375, 2), '0.38');
    assert.equal(formatFixed(0.125, 2), '0.12');
    assert.equal(formatFixed(62.5, 0), '62');
    assert.equal(formatFixed(63.5, 0), '64');
  });

  test('four significant digits (intensities, PUE)', () => {
    const cases: [number, string][] = [
      [35.82, '35.82'],
      [614.98, '615'],
      [1.58, '1.58'],
      [1, '1'],
      [1.234567, '1.235'],
      [1.234e-5, '1.234e-05'],
      [12345678, '1.235e+07']
    ];
    for (const [v, s] of cases) {
      assert.equal(formatG(v, 4), s);
    }
  });

  test('durations', () => {
    const cases: [number, string][] = [
      [0, '0.00 s'],
      [0.004, '0.00 s'],
      [2.031, '2.03 s'],
      [59.994, '59.99 s'],
      [59.996, '60.00 s'],
      [60, '1 min 0 s'],
      [61.5, '1 min 2 s'],
      [62.5, '1 min 2 s'],
      [3599.4, '59 min 59 s'],
      [3600, '1 h 0 min'],
      [3725, '1 h 2 min'],
      [86399, '23 h 59 min'],
      [90061, '25 h 1 min']
    ];
    for (const [v, s] of cases) {
      assert.equal(formatDuration(v), s, String(v));
    }
  });
});

describe('words', () => {
  test('the badge text', () => {
    assert.equal(formatCost(24.4, 0.000243), '24.4 J · 0.243 mg CO2e');
  });

  test('how obtained, grouped by kind in a stable order', () => {
    assert.equal(
      howObtained([
        { method: 'memory-model' },
        { method: 'rapl-counter' },
        { method: 'nvml-power' },
        { method: 'rapl-counter' }
      ]),
      'measured: RAPL counter; sampled: NVML power, sampled; estimated: memory model'
    );
    assert.equal(howObtained([]), 'nothing measured');
  });

  test('labels stay on one line and short', () => {
    assert.equal(shownLabel('a\nb\tc'), 'a b c');
    assert.equal(shownLabel('x'.repeat(100)).length, 80);
  });

  test('cell names: label, else In [n], else the cell number', () => {
    const r = (label: string | null, count: number | null) => ({ label, execution_count: count }) as IRecord;
    assert.equal(cellName([r(null, 3), r('fit', null)], 0), 'fit');
    assert.equal(cellName([r(null, 3)], 0), 'In [3]');
    assert.equal(cellName([r(null, null)], 4), 'cell 5');
  });

  test('pricing in words', () => {
    assert.equal(pricingWords(AS_RECORDED, ['SE'], [1]), 'as recorded (SE, PUE 1)');
    const pl = {
      code: 'PL',
      name: 'Poland',
      g_per_kwh: 614.98,
      year: 2024,
      source: '',
      basis: '',
      license: '',
      aliases: []
    };
    assert.equal(
      pricingWords({ region: pl, pue: null }, [], []),
      'for PL Poland, 615 g/kWh, PUE as recorded'
    );
    assert.equal(
      pricingWords({ region: null, pue: 1.5 }, [], []),
      'for each record\u2019s own region, PUE 1.5'
    );
  });
});

describe('shares of machine-wide counters', () => {
  const share = (
    device: string,
    energy: number,
    fraction: number,
    machine: number,
    bases = ['cpu-time']
  ) => ({
    device,
    bases,
    energy_j: energy,
    machine_energy_j: machine,
    fraction
  });
  const cpu: IComponentTotal = {
    component: 'cpu',
    energy_j: 15.2,
    methods: [{ method: 'rapl-counter', kind: 'measured', label: 'RAPL counter', energy_j: 15.2 }],
    shares: [share('package-0', 15.2, 0.38, 40)]
  };
  const memory: IComponentTotal = {
    component: 'memory',
    energy_j: 0.8,
    methods: [{ method: 'memory-model', kind: 'estimated', label: 'memory model', energy_j: 0.8 }],
    shares: []
  };

  test('a component line says the share, of what, and by what', () => {
    assert.equal(
      shareLine('cpu', cpu.shares[0]),
      'cpu package-0: 15.2 J (your share: 38% of 40 J, by CPU time)'
    );
    assert.equal(
      shareLine('gpu', share('gpu0', 1500, 0.042, 35_714, ['gpu-utilization', 'gpu-processes'])),
      'gpu gpu0: 1.5 kJ (your share: 4.2% of 35.7 kJ, by GPU utilization or split between the processes on the GPU)'
    );
  });

  test('every basis has words, as the readout says them', () => {
    for (const basis of SHARE_BASES) {
      assert.match(shareBasisWords([basis]), /^(by|split) [a-z]/i, basis);
      assert.doesNotMatch(shareBasisWords([basis]), /-/, basis);
    }
    assert.equal(shareBasisWords(['cpu-time']), 'by CPU time');
  });

  test('percent: three significant figures, as the readout', () => {
    assert.equal(formatPercent(0.38), '38%');
    assert.equal(formatPercent(0.3846), '38.5%');
    assert.equal(formatPercent(1), '100%');
    assert.equal(formatPercent(0.042), '4.2%');
    assert.equal(formatPercent(0.0004), '0.04%');
    assert.equal(formatPercent(0), '0%');
  });

  test('the tooltip lists the share under its component', () => {
    assert.deepEqual(componentLines([cpu, memory]), [
      'cpu 15.2 J (95.0%), measured: RAPL counter',
      '  cpu package-0: 15.2 J (your share: 38% of 40 J, by CPU time)',
      'memory 0.8 J (5.0%), estimated: memory model'
    ]);
  });

  test('the panel says once that figures are shares, and only then', () => {
    assert.equal(sharesNote([memory]), null);
    assert.equal(
      sharesNote([cpu, memory]),
      'Figures are shares: cpu (by CPU time) is this notebook\u2019s part of a machine-wide ' +
        'counter the rest of the machine also drew on. Totals add the shares, never the machine\u2019s whole energy.'
    );
    const gpu = { ...cpu, component: 'gpu', shares: [share('gpu0', 1, 0.5, 2, ['gpu-processes'])] };
    const dram = { ...cpu, component: 'dram' };
    assert.match(
      sharesNote([cpu, dram, gpu])!,
      /^Figures are shares: cpu \(by CPU time\), dram \(by CPU time\) and gpu \(split between the processes on the GPU\) are .* machine-wide counters /
    );
  });
});
