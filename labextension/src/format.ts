/**
 * Numbers as the readouts print them (nbcarbon/readout.py), so a badge, the status bar and the
 * panel say "24.4 J" and "0.243 mg" exactly where the readout and `nbcarbon report` do. Pure.
 */

import {
  IComponentTotal,
  IPricing,
  IRecord,
  IShareTotal,
  KINDS,
  SHARE_BASES,
  isRecorded,
  methodKind,
  methodLabel,
  shareBasisLabel
} from './records';

/**
 * JavaScript rounds exact ties away from zero (`(1.125).toFixed(2)` is "1.13"); Python rounds
 * them to even ("1.12"). Both see the exact binary value, so only exact ties differ: detect
 * one from 25 more digits (a double's non-tie shows a non-zero digit well within them).
 */
function tieToEven(rounded: string, longer: string, keptEnd: number): string {
  const rest = longer.slice(keptEnd).replace(/e.*$/, '').replace('.', '');
  if (!/^50*$/.test(rest)) {
    return rounded;
  }
  const kept = longer.slice(0, keptEnd);
  const last = kept.replace(/\D/g, '').slice(-1);
  if (Number(last) % 2 === 1) {
    return rounded; // odd: rounding away (up) gives the even digit, as JavaScript did
  }
  const exponent = longer.match(/e.*$/);
  return kept + (exponent ? exponent[0] : '');
}

/** Python's `f"{x:.{f}f}"` (round half to even on exact ties). */
export function formatFixed(x: number, f: number): string {
  if (!Number.isFinite(x) || x < 0) {
    return x < 0 ? '-' + formatFixed(-x, f) : String(x);
  }
  const rounded = x.toFixed(f);
  const longer = x.toFixed(Math.min(100, f + 25));
  const end = longer.indexOf('.') + (f === 0 ? 0 : f + 1);
  return tieToEven(rounded, longer, end);
}

/** Python's `format(x, ".{digits}g")`: significant digits, no trailing zeros, exponent outside 1e-4..1e{digits}. */
export function formatG(x: number, digits = 3): string {
  if (Number.isNaN(x)) {
    return 'nan';
  }
  if (!Number.isFinite(x)) {
    return x > 0 ? 'inf' : '-inf';
  }
  if (x === 0) {
    return Object.is(x, -0) ? '-0' : '0';
  }
  if (x < 0) {
    return '-' + formatG(-x, digits);
  }
  const longer = x.toExponential(Math.min(100, digits - 1 + 25));
  const rounded = tieToEven(x.toExponential(digits - 1), longer, digits === 1 ? 1 : digits + 1);
  const [mantissa, exp] = rounded.split('e');
  const exponent = Number(exp);
  if (exponent < -4 || exponent >= digits) {
    const m = mantissa.includes('.') ? mantissa.replace(/0+$/, '').replace(/\.$/, '') : mantissa;
    const sign = exponent < 0 ? '-' : '+';
    return `${m}e${sign}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  const fixed = formatFixed(x, Math.max(0, digits - 1 - exponent));
  return fixed.includes('.') ? fixed.replace(/0+$/, '').replace(/\.$/, '') : fixed;
}

/** Joules in J, kJ, MJ or GJ, three significant figures ("24.4 J"). */
export function formatJoules(energyJ: number): string {
  if (energyJ < 1e3) {
    return `${formatG(energyJ)} J`;
  }
  if (energyJ < 1e6) {
    return `${formatG(energyJ / 1e3)} kJ`;
  }
  if (energyJ < 1e9) {
    return `${formatG(energyJ / 1e6)} MJ`;
  }
  return `${formatG(energyJ / 1e9)} GJ`;
}

/** Joules with the Wh equivalent ("24.4 J (6.77 mWh)"), as `readout.format_energy`. */
export function formatEnergy(energyJ: number): string {
  const wh = energyJ / 3600;
  const other =
    wh < 1 ? `${formatG(wh * 1000)} mWh` : wh < 1000 ? `${formatG(wh)} Wh` : `${formatG(wh / 1000)} kWh`;
  return `${formatJoules(energyJ)} (${other})`;
}

/** Grams of CO2e in mg, g or kg ("0.243 mg"), as `readout.format_mass`. */
export function formatMass(co2eG: number): string {
  if (co2eG < 1) {
    return `${formatG(co2eG * 1000)} mg`;
  }
  if (co2eG < 1000) {
    return `${formatG(co2eG)} g`;
  }
  return `${formatG(co2eG / 1000)} kg`;
}

/** As `readout.format_duration`: "2.03 s", "3 min 12 s", "1 h 4 min". */
export function formatDuration(durationS: number): string {
  if (durationS < 60) {
    return `${formatFixed(durationS, 2)} s`;
  }
  let minutes = Math.floor(durationS / 60);
  const seconds = durationS - minutes * 60;
  if (minutes < 60) {
    return `${minutes} min ${formatFixed(seconds, 0)} s`;
  }
  const hours = Math.floor(minutes / 60);
  minutes -= hours * 60;
  return `${hours} h ${minutes} min`;
}

/** The short form a badge and the status bar show: "24.4 J · 0.243 mg CO2e". */
export function formatCost(energyJ: number, co2eG: number): string {
  return `${formatJoules(energyJ)} · ${formatMass(co2eG)} CO2e`;
}

/** "measured: RAPL counter; estimated: memory model", as `readout.how_obtained`. */
export function howObtained(components: ReadonlyArray<{ method: string }>): string {
  const groups = new Map<string, string[]>();
  for (const c of components) {
    const kind = methodKind(c.method);
    const names = groups.get(kind) ?? [];
    groups.set(kind, names);
    const label = methodLabel(c.method);
    if (!names.includes(label)) {
      names.push(label);
    }
  }
  const parts = KINDS.filter(k => groups.has(k)).map(k => `${k}: ${groups.get(k)!.join(', ')}`);
  return parts.join('; ') || 'nothing measured';
}

/** A label on one line, at most `limit` characters (the readouts' `shown_label`, simplified). */
export function shownLabel(label: string, limit = 80): string {
  const oneLine = [...label.split(/\s+/).filter(Boolean).join(' ')]
    .map(ch => (ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f ? '?' : ch))
    .join('');
  return oneLine.length <= limit ? oneLine : oneLine.slice(0, limit - 1) + '…';
}

/** How a cell is named in lists: its label, else "In [n]", else "cell n". */
export function cellName(records: ReadonlyArray<IRecord>, cellIndex: number): string {
  const labelled = records.find(r => r.label !== null);
  if (labelled && labelled.label !== null) {
    return shownLabel(labelled.label);
  }
  const counted = records.find(r => r.execution_count !== null);
  if (counted) {
    return `In [${counted.execution_count}]`;
  }
  return `cell ${cellIndex + 1}`;
}

/** Share of a total as "99.8%" (one decimal), "<0.1%" for tiny non-zero shares. */
export function formatShare(part: number, total: number): string {
  if (total <= 0) {
    return '—';
  }
  const pct = (part / total) * 100;
  if (pct > 0 && pct < 0.1) {
    return '<0.1%';
  }
  return `${pct.toFixed(1)}%`;
}

/** "by CPU time"; "by GPU utilization or split between the processes on the GPU" for two. */
export function shareBasisWords(bases: ReadonlyArray<string>): string {
  return bases.map(shareBasisLabel).join(' or ');
}

/** A fraction as a percent with three significant figures ("38%", "4.21%"), as the readout. */
export function formatPercent(fraction: number): string {
  return `${formatG(fraction * 100)}%`;
}

/** "cpu package-0: 15.2 J (your share: 38% of 40 J, by CPU time)". */
export function shareLine(component: string, share: IShareTotal): string {
  return (
    `${component} ${share.device}: ${formatJoules(share.energy_j)} (your share: ` +
    `${formatPercent(share.fraction)} of ${formatJoules(share.machine_energy_j)}, ${shareBasisWords(share.bases)})`
  );
}

/**
 * One line per component for a tooltip: "cpu 24.3 J (99.8%), measured: RAPL counter", then,
 * indented, one per device whose energy is a share of a machine-wide counter (`shareLine`).
 */
export function componentLines(components: ReadonlyArray<IComponentTotal>): string[] {
  const total = components.reduce((s, c) => s + c.energy_j, 0);
  return components.flatMap(c => {
    const how = c.methods.map(m => `${m.kind}: ${m.label}`).join(', ');
    return [
      `${c.component} ${formatJoules(c.energy_j)} (${formatShare(c.energy_j, total)}), ${how}`,
      ...c.shares.map(s => '  ' + shareLine(c.component, s))
    ];
  });
}

/**
 * Said once where figures include shares (the panel): which components are a share of a
 * machine-wide counter and by what, and that totals add the shares; null when none is.
 */
export function sharesNote(components: ReadonlyArray<IComponentTotal>): string | null {
  const split = components.filter(c => c.shares.length);
  if (!split.length) {
    return null;
  }
  const parts = split.map(c => {
    const bases = SHARE_BASES.filter(b => c.shares.some(s => s.bases.includes(b)));
    return `${c.component} (${shareBasisWords(bases)})`;
  });
  const one = parts.length === 1;
  const listed = one ? parts[0] : `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`;
  return (
    `Figures are shares: ${listed} ${one ? 'is' : 'are'} this notebook\u2019s part of ` +
    `${one ? 'a machine-wide counter' : 'machine-wide counters'} the rest of the machine also drew on. ` +
    'Totals add the shares, never the machine\u2019s whole energy.'
  );
}

/** How a view is priced, in words: "as recorded (SE, PUE 1)" or "for PL Poland, 615 g/kWh, PUE as recorded". */
export function pricingWords(
  pricing: IPricing,
  recordedRegions: ReadonlyArray<string>,
  recordedPues: ReadonlyArray<number>
): string {
  if (isRecorded(pricing)) {
    const regions = recordedRegions.length ? recordedRegions.join(', ') : '—';
    const pues = recordedPues.length ? recordedPues.map(p => formatG(p, 4)).join(', ') : '—';
    return `as recorded (${regions}, PUE ${pues})`;
  }
  const where = pricing.region
    ? `${pricing.region.code} ${pricing.region.name}, ${formatG(pricing.region.g_per_kwh, 4)} g/kWh`
    : 'each record\u2019s own region';
  const pue = pricing.pue === null ? 'PUE as recorded' : `PUE ${formatG(pricing.pue, 4)}`;
  return `for ${where}, ${pue}`;
}
