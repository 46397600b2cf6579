/**
 * The footprint records a notebook carries (SPEC section 4), and every number the extension
 * shows that is derived from them: validation, the top-level rule, totals, components, the
 * ranking of cells, per-cell badges and re-pricing.
 *
 * Pure: no JupyterLab, no DOM. The rules mirror the Python package's (nbcarbon/footprint.py
 * and nbcarbon/notebook.py), and the vocabulary (schema, statuses, components, methods) is
 * generated from it (schema.generated.ts), so the status bar, the panel and `nbcarbon report`
 * agree:
 *   - a record is `outputs[i].metadata.nbcarbon` with `kind: "cell"`; `kind: "summary"`
 *     outputs are never counted; anything else that fails validation is a problem, not a cell;
 *   - duplicate outputs of one record id count once (the last one's content, the first one's
 *     place);
 *   - totals add top-level records only: no parent, or a parent that is not among the records;
 *   - a component with a `share` (the record's `attribution` is then "share") carries the cell's
 *     part of a machine-wide counter as its `energy_j`: totals add that, never the machine's.
 */

import {
  COMPONENTS,
  METHOD_KIND,
  METHOD_LABEL,
  SCHEMA,
  SHARE_BASES,
  SHARE_BASIS_LABEL,
  STATUSES
} from './schema.generated';

export { COMPONENTS, METHOD_KIND, METHOD_LABEL, SCHEMA, SHARE_BASES, SHARE_BASIS_LABEL, STATUSES };

/** Where a record lives in an output: `output.metadata[METADATA_KEY]`. */
export const METADATA_KEY = 'nbcarbon';
export const J_PER_KWH = 3.6e6;
/** How a number was obtained, in the order readouts list them. */
export const KINDS = ['measured', 'sampled', 'estimated'] as const;

export type Kind = (typeof KINDS)[number];

/**
 * How a machine-wide counter was split (`Share` in nbcarbon/footprint.py): the cell was charged
 * `fraction` of `machine_energy_j`, by `basis` (one of SHARE_BASES).
 */
export interface IShare {
  basis: string;
  fraction: number;
  machine_energy_j: number;
}

export interface IComponent {
  component: string;
  device: string;
  method: string;
  /** What the window is charged: its share when `share` is set, which totals add. */
  energy_j: number;
  mean_power_w: number;
  /** Set when `energy_j` is the window's share of a machine-wide counter. */
  share: IShare | null;
}

export interface IPricedRegion {
  code: string;
  name: string;
  g_per_kwh: number;
  year: number | null;
  source: string;
  basis: string;
  chosen_by: string;
}

export interface IIterations {
  label: string;
  duration_s: number[];
  energy_j: number[];
}

/** One measured window (a cell, a `track()` block, an `epochs()` loop). */
export interface IRecord {
  id: string;
  parent_id: string | null;
  cell_id: string | null;
  label: string | null;
  execution_count: number | null;
  started_at: string;
  duration_s: number;
  status: string;
  components: IComponent[];
  energy_j: number;
  pue: number;
  region: IPricedRegion;
  co2e_g: number;
  attribution: string;
  warnings: string[];
  iterations: IIterations | null;
}

/** A record and where it was found: the index of its cell and of its first output there. */
export interface IFound {
  record: IRecord;
  cell: number;
  output: number;
}

/** What a notebook's outputs hold. */
export interface ICollected {
  /** Valid cell records, one per id, in the order of their first output. */
  records: IFound[];
  /** Outputs carrying a `kind: "summary"` record (never counted as cells). */
  summaries: number;
  /** One line per record that could not be read, saying where and why. */
  problems: string[];
}

/** A cell's outputs as the collector needs them: each output's metadata, or undefined. */
export interface ICellOutputs {
  outputs: ReadonlyArray<unknown>;
}

export class RecordError extends Error {}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function short(value: unknown, limit = 60): string {
  let text: string;
  try {
    text = typeof value === 'string' ? `'${value}'` : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length <= limit ? text : text.slice(0, limit - 1) + '…';
}

function typeName(value: unknown): string {
  if (value === null) {
    return 'null';
  }
  if (Array.isArray(value)) {
    return 'list';
  }
  if (typeof value === 'number') {
    return Number.isInteger(value) ? 'int' : 'float';
  }
  return { string: 'str', boolean: 'bool', object: 'dict' }[typeof value as string] ?? typeof value;
}

type FieldType = 'str' | 'int' | 'list' | 'dict';

function field(d: Json, name: string, kind: FieldType, optional = false): unknown {
  if (!(name in d)) {
    throw new RecordError(`record is missing the field '${name}'`);
  }
  const value = d[name];
  if (value === null && optional) {
    return null;
  }
  const ok =
    kind === 'str'
      ? typeof value === 'string'
      : kind === 'int'
        ? typeof value === 'number' && Number.isInteger(value)
        : kind === 'list'
          ? Array.isArray(value)
          : isObject(value);
  if (!ok) {
    throw new RecordError(`record field '${name}' must be ${kind}, not ${typeName(value)}`);
  }
  return value;
}

function num(d: Json, name: string): number {
  if (!(name in d)) {
    throw new RecordError(`record is missing the field '${name}'`);
  }
  const value = d[name];
  if (typeof value !== 'number') {
    throw new RecordError(`record field '${name}' must be a number, not ${typeName(value)}`);
  }
  if (!Number.isFinite(value) || value < 0) {
    throw new RecordError(`record field '${name}' must be a finite number >= 0, not ${short(value)}`);
  }
  return value;
}

function parseShare(d: unknown): IShare {
  if (!isObject(d)) {
    throw new RecordError("component 'share' must be a JSON object");
  }
  const basis = field(d, 'basis', 'str') as string;
  if (!SHARE_BASES.includes(basis)) {
    throw new RecordError(`share basis must be one of ${SHARE_BASES.join(', ')}, not ${short(basis)}`);
  }
  const fraction = num(d, 'fraction');
  if (fraction > 1) {
    throw new RecordError(`share fraction must be from 0 to 1, not ${short(d['fraction'])}`);
  }
  return { basis, fraction, machine_energy_j: num(d, 'machine_energy_j') };
}

function parseComponent(c: unknown): IComponent {
  if (!isObject(c)) {
    throw new RecordError('each component must be a JSON object');
  }
  const component = field(c, 'component', 'str') as string;
  const method = field(c, 'method', 'str') as string;
  if (!COMPONENTS.includes(component)) {
    throw new RecordError(`component must be one of ${COMPONENTS.join(', ')}, not ${short(component)}`);
  }
  if (!(method in METHOD_KIND)) {
    throw new RecordError(
      `component method must be one of ${Object.keys(METHOD_KIND).join(', ')}, not ${short(method)}`
    );
  }
  return {
    component,
    device: field(c, 'device', 'str') as string,
    method,
    energy_j: num(c, 'energy_j'),
    mean_power_w: num(c, 'mean_power_w'),
    share: c['share'] !== undefined && c['share'] !== null ? parseShare(c['share']) : null
  };
}

function parseRegion(r: Json): IPricedRegion {
  return {
    year: field(r, 'year', 'int', true) as number | null,
    code: field(r, 'code', 'str') as string,
    name: field(r, 'name', 'str') as string,
    g_per_kwh: num(r, 'g_per_kwh'),
    source: field(r, 'source', 'str') as string,
    basis: field(r, 'basis', 'str') as string,
    chosen_by: field(r, 'chosen_by', 'str') as string
  };
}

function parseIterations(d: unknown): IIterations {
  if (!isObject(d)) {
    throw new RecordError("record field 'iterations' must be a JSON object");
  }
  const series: number[][] = [];
  for (const name of ['duration_s', 'energy_j']) {
    const values = field(d, name, 'list') as unknown[];
    if (!values.every(v => typeof v === 'number' && Number.isFinite(v) && v >= 0)) {
      throw new RecordError(`record iterations '${name}' must be finite numbers >= 0`);
    }
    series.push(values as number[]);
  }
  if (series[0].length !== series[1].length) {
    throw new RecordError("record iterations: 'duration_s' and 'energy_j' differ in length");
  }
  const statuses = d['statuses'] ?? {};
  if (
    !isObject(statuses) ||
    !Object.entries(statuses).every(
      ([k, v]) => /^[0-9]+$/.test(k) && typeof v === 'string' && STATUSES.includes(v)
    )
  ) {
    throw new RecordError("record iterations 'statuses' must map indexes to statuses");
  }
  return { label: String(d['label'] ?? 'iteration'), duration_s: series[0], energy_j: series[1] };
}

/**
 * Validate one record read from an output's metadata, as `Footprint.from_dict` does: unknown
 * extra fields are ignored; a missing or mistyped field, or a newer schema, is an error.
 */
export function parseRecord(d: unknown): IRecord {
  if (!isObject(d)) {
    throw new RecordError(`a record must be a JSON object, not ${typeName(d)}`);
  }
  const schema = d['schema'];
  if (typeof schema !== 'number' || !Number.isInteger(schema)) {
    throw new RecordError("record has no integer 'schema' field");
  }
  if (schema > SCHEMA) {
    throw new RecordError(
      `record has schema ${schema}, newer than this nbcarbon understands (${SCHEMA}); upgrade nbcarbon to read it`
    );
  }
  if (d['kind'] !== 'cell') {
    throw new RecordError(`record kind must be 'cell', not ${short(d['kind'])}`);
  }
  const region = parseRegion(field(d, 'region', 'dict') as Json);
  const components = (field(d, 'components', 'list') as unknown[]).map((c, i) => {
    try {
      return parseComponent(c);
    } catch (err) {
      throw new RecordError(`record component ${i}: ${(err as Error).message}`);
    }
  });
  const status = field(d, 'status', 'str') as string;
  if (!STATUSES.includes(status)) {
    throw new RecordError(`record status must be one of ${STATUSES.join(', ')}, not ${short(status)}`);
  }
  const warnings = field(d, 'warnings', 'list') as unknown[];
  if (!warnings.every(w => typeof w === 'string')) {
    throw new RecordError("record 'warnings' must be a list of strings");
  }
  const executionCount = field(d, 'execution_count', 'int', true) as number | null;
  const parentId = 'parent_id' in d ? (field(d, 'parent_id', 'str', true) as string | null) : null;
  const iterations =
    d['iterations'] !== undefined && d['iterations'] !== null ? parseIterations(d['iterations']) : null;
  return {
    id: field(d, 'id', 'str') as string,
    cell_id: field(d, 'cell_id', 'str', true) as string | null,
    label: field(d, 'label', 'str', true) as string | null,
    execution_count: executionCount,
    started_at: field(d, 'started_at', 'str') as string,
    duration_s: num(d, 'duration_s'),
    status,
    components,
    energy_j: num(d, 'energy_j'),
    pue: num(d, 'pue'),
    region,
    co2e_g: num(d, 'co2e_g'),
    attribution: field(d, 'attribution', 'str') as string,
    warnings: warnings as string[],
    parent_id: parentId,
    iterations
  };
}

/**
 * The records of a notebook's cells, given each cell's outputs' metadata (undefined where an
 * output has none). Duplicates of one record id count once, like `nbcarbon.notebook.collect`.
 */
export function collect(cells: Iterable<ICellOutputs>): ICollected {
  const found: IFound[] = [];
  const seen = new Map<string, number>();
  const problems: string[] = [];
  let summaries = 0;
  let index = 0;
  for (const cell of cells) {
    cell.outputs.forEach((metadata, output) => {
      if (!isObject(metadata) || !(METADATA_KEY in metadata)) {
        return;
      }
      const raw = metadata[METADATA_KEY];
      if (isObject(raw) && raw['kind'] === 'summary') {
        summaries += 1;
        return;
      }
      let record: IRecord;
      try {
        record = parseRecord(raw);
      } catch (err) {
        problems.push(`cell ${index}: ${(err as Error).message}`);
        return;
      }
      const at = seen.get(record.id);
      if (at !== undefined) {
        found[at] = { ...found[at], record };
      } else {
        seen.set(record.id, found.length);
        found.push({ record, cell: index, output });
      }
    });
    index += 1;
  }
  return { records: found, summaries, problems };
}

/** Whether each record is top level: no parent, or a parent not among `found` (footprint.top_level). */
export function topLevelFlags(found: ReadonlyArray<IFound>): boolean[] {
  const ids = new Set(found.map(f => f.record.id));
  return found.map(f => {
    const parent = f.record.parent_id;
    return parent === null || parent === f.record.id || !ids.has(parent);
  });
}

/** The records that totals add up: each window counted once, never inside its parent too. */
export function topLevel(found: ReadonlyArray<IFound>): IFound[] {
  const flags = topLevelFlags(found);
  return found.filter((_, i) => flags[i]);
}

/** A region to price in, as the bundled intensity table gives it. */
export interface IRegionRow {
  code: string;
  name: string;
  g_per_kwh: number;
  year: number | null;
  source: string;
  basis: string;
  license: string;
  aliases: string[];
}

/**
 * How the view prices energy. `null` keeps what each record says (its region, its PUE), so
 * the default pricing shows exactly what the notebook stores.
 */
export interface IPricing {
  region: IRegionRow | null;
  pue: number | null;
}

export const AS_RECORDED: IPricing = Object.freeze({ region: null, pue: null });

export function isRecorded(pricing: IPricing): boolean {
  return pricing.region === null && pricing.pue === null;
}

/** Grams of CO2e for `energyJ` of IT energy in a facility of `pue` on a grid of `gPerKwh`. */
export function co2eG(energyJ: number, pue: number, gPerKwh: number): number {
  return (energyJ / J_PER_KWH) * pue * gPerKwh;
}

/** The record's CO2e under `pricing`: the stored figure when nothing is changed. */
export function pricedCo2e(record: IRecord, pricing: IPricing): number {
  if (isRecorded(pricing)) {
    return record.co2e_g;
  }
  const g = pricing.region ? pricing.region.g_per_kwh : record.region.g_per_kwh;
  const pue = pricing.pue ?? record.pue;
  return co2eG(record.energy_j, pue, g);
}

/** One device's shares of a machine-wide counter, added up over windows. */
export interface IShareTotal {
  device: string;
  /** What the energy was split by (SHARE_BASES order). */
  bases: string[];
  /** The energy charged to the windows: part of the component's `energy_j`. */
  energy_j: number;
  /** The machine-wide counter's energy over the same windows. */
  machine_energy_j: number;
  /** The windows' part of it: the recorded fraction for one window, else charged / machine. */
  fraction: number;
}

export interface IComponentTotal {
  component: string;
  /** The energy charged: where a counter was split, the share, never its `machine_energy_j`. */
  energy_j: number;
  /** Each method that contributed, with its kind and its joules, largest first. */
  methods: { method: string; kind: Kind; label: string; energy_j: number }[];
  /** The devices whose energy is a share of a machine-wide counter (empty when none is). */
  shares: IShareTotal[];
}

export interface ITotals {
  /** Top-level records added up. */
  cells: number;
  /** Every valid record, nested ones included. */
  records: number;
  duration_s: number;
  energy_j: number;
  co2e_g: number;
  /** Per component (cpu, dram, gpu, memory order), over the top-level records. */
  components: IComponentTotal[];
  /** Region codes the records are priced in (for the "as recorded" view). */
  regions: string[];
  pues: number[];
}

export function methodKind(method: string): Kind {
  return METHOD_KIND[method] ?? 'estimated';
}

export function methodLabel(method: string): string {
  return METHOD_LABEL[method] ?? method;
}

/** How a share was split, as the readout says it: "by CPU time" (`readout.SHARE_BASIS_LABEL`). */
export function shareBasisLabel(basis: string): string {
  return SHARE_BASIS_LABEL[basis] ?? `by ${basis}`;
}

/** Shares of one component's devices, added up: `fraction` weighs each window by its machine energy. */
function shareTotals(components: ReadonlyArray<IComponent>): IShareTotal[] {
  const by = new Map<string, IShare[]>();
  for (const c of components) {
    if (c.share) {
      const shares = by.get(c.device) ?? [];
      by.set(c.device, shares);
      shares.push(c.share);
    }
  }
  const charged = (device: string): number =>
    components.reduce((s, c) => s + (c.share && c.device === device ? c.energy_j : 0), 0);
  return [...by.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([device, shares]) => {
      const machine = shares.reduce((s, x) => s + x.machine_energy_j, 0);
      const weighted = shares.reduce((s, x) => s + x.fraction * x.machine_energy_j, 0);
      return {
        device,
        bases: SHARE_BASES.filter(b => shares.some(x => x.basis === b)),
        energy_j: charged(device),
        machine_energy_j: machine,
        fraction: shares.length === 1 ? shares[0].fraction : machine > 0 ? weighted / machine : 0
      };
    });
}

function componentTotals(records: ReadonlyArray<IRecord>): IComponentTotal[] {
  const by = new Map<string, Map<string, number>>();
  const parts = new Map<string, IComponent[]>();
  for (const record of records) {
    for (const c of record.components) {
      const methods = by.get(c.component) ?? new Map<string, number>();
      by.set(c.component, methods);
      methods.set(c.method, (methods.get(c.method) ?? 0) + c.energy_j);
      const list = parts.get(c.component) ?? [];
      parts.set(c.component, list);
      list.push(c);
    }
  }
  const order = (name: string): number => {
    const i = COMPONENTS.indexOf(name);
    return i < 0 ? COMPONENTS.length : i;
  };
  return [...by.entries()]
    .sort(([a], [b]) => order(a) - order(b) || a.localeCompare(b))
    .map(([component, methods]) => ({
      component,
      energy_j: [...methods.values()].reduce((s, v) => s + v, 0),
      methods: [...methods.entries()]
        .sort(([, a], [, b]) => b - a)
        .map(([method, energy_j]) => ({
          method,
          kind: methodKind(method),
          label: methodLabel(method),
          energy_j
        })),
      shares: shareTotals(parts.get(component) ?? [])
    }));
}

/** Totals of the top-level records under `pricing` (SPEC section 4: nested windows never twice). */
export function totals(found: ReadonlyArray<IFound>, pricing: IPricing = AS_RECORDED): ITotals {
  const top = topLevel(found).map(f => f.record);
  const sum = (f: (r: IRecord) => number): number => top.reduce((s, r) => s + f(r), 0);
  return {
    cells: top.length,
    records: found.length,
    duration_s: sum(r => r.duration_s),
    energy_j: sum(r => r.energy_j),
    co2e_g: sum(r => pricedCo2e(r, pricing)),
    components: componentTotals(top),
    regions: [...new Set(top.map(r => r.region.code))],
    pues: [...new Set(top.map(r => r.pue))]
  };
}

/** What one cell cost: the records found in its outputs. */
export interface ICellCost {
  /** The cell's index in the notebook. */
  cell: number;
  /** Records in this cell that totals count. */
  top: IRecord[];
  /** Records in this cell nested in another window (their energy is in their parent's). */
  nested: IRecord[];
  /** Of the top-level records, or of the nested ones when the cell holds no top-level record. */
  energy_j: number;
  co2e_g: number;
  duration_s: number;
  /** True when every record here is nested in a window counted elsewhere. */
  nestedOnly: boolean;
  components: IComponentTotal[];
}

/** Per cell index, what its records cost (cells without records are absent). */
export function cellCosts(
  found: ReadonlyArray<IFound>,
  pricing: IPricing = AS_RECORDED
): Map<number, ICellCost> {
  const flags = topLevelFlags(found);
  const byCell = new Map<number, { top: IRecord[]; nested: IRecord[] }>();
  found.forEach((f, i) => {
    const entry = byCell.get(f.cell) ?? { top: [], nested: [] };
    byCell.set(f.cell, entry);
    (flags[i] ? entry.top : entry.nested).push(f.record);
  });
  const out = new Map<number, ICellCost>();
  for (const [cell, { top, nested }] of byCell) {
    const counted = top.length ? top : nested;
    out.set(cell, {
      cell,
      top,
      nested,
      energy_j: counted.reduce((s, r) => s + r.energy_j, 0),
      co2e_g: counted.reduce((s, r) => s + pricedCo2e(r, pricing), 0),
      duration_s: counted.reduce((s, r) => s + r.duration_s, 0),
      nestedOnly: top.length === 0,
      components: componentTotals(counted)
    });
  }
  return out;
}

/** Cells ranked by cost under `pricing`: CO2e, then energy, then notebook order. Nested-only cells last. */
export function rankCells(found: ReadonlyArray<IFound>, pricing: IPricing = AS_RECORDED): ICellCost[] {
  return [...cellCosts(found, pricing).values()].sort(
    (a, b) =>
      Number(a.nestedOnly) - Number(b.nestedOnly) ||
      b.co2e_g - a.co2e_g ||
      b.energy_j - a.energy_j ||
      a.cell - b.cell
  );
}
