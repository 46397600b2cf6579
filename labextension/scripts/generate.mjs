// Generates the browser's copies of what the Python package defines, so the extension reads
// records by the very rules and figures the kernel uses (nothing is maintained twice):
//   src/regions.generated.ts  the bundled intensity table, from ../nbcarbon/data/regions.csv
//                             (provenance and licences: ../nbcarbon/data/DATA_LICENSE);
//   src/schema.generated.ts   the record schema's vocabulary: SCHEMA, STATUSES and
//                             SHARE_BASES (nbcarbon/footprint.py), COMPONENTS and METHOD_KIND
//                             (nbcarbon/meters/base.py), METHOD_LABEL and SHARE_BASIS_LABEL
//                             (nbcarbon/readout.py).
// Run by every build, lint and test script; the outputs are not committed. `--check` only says
// whether they are current; `--json` prints what was read, as JSON
// (tests/browser/test_labextension_browser.py compares it with the Python package itself).
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, '..', '..', 'nbcarbon');
const csvPath = join(pkg, 'data', 'regions.csv');
const regionsOut = join(here, '..', 'src', 'regions.generated.ts');
const schemaOut = join(here, '..', 'src', 'schema.generated.ts');
const COLUMNS = ['code', 'name', 'g_per_kwh', 'year', 'source', 'basis', 'license', 'aliases'];

/** RFC 4180 CSV (quoted fields, doubled quotes, CRLF or LF), as Python's csv module reads it. */
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let value = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        value += '"';
        i++;
      } else if (ch === '"') {
        quoted = false;
      } else {
        value += ch;
      }
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === ',') {
      row.push(value);
      value = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') {
        i++;
      }
      row.push(value);
      rows.push(row);
      row = [];
      value = '';
    } else {
      value += ch;
    }
  }
  if (value !== '' || row.length) {
    row.push(value);
    rows.push(row);
  }
  return rows.filter(r => r.length > 1 || r[0] !== '');
}

export function regionsFromCsv(text) {
  const [head, ...body] = parseCsv(text.replace(/^\ufeff/, ''));
  if (head.join(',') !== COLUMNS.join(',')) {
    throw new Error(`regions.csv: expected columns ${COLUMNS.join(',')}, found ${head.join(',')}`);
  }
  return body.map((cells, i) => {
    if (cells.length !== COLUMNS.length) {
      throw new Error(`regions.csv row ${i + 2}: ${cells.length} fields, expected ${COLUMNS.length}`);
    }
    const r = Object.fromEntries(COLUMNS.map((c, j) => [c, cells[j]]));
    const g = Number(r.g_per_kwh);
    if (!r.code || !Number.isFinite(g) || g < 0) {
      throw new Error(`regions.csv row ${i + 2}: bad code or intensity`);
    }
    return {
      code: r.code,
      name: r.name,
      g_per_kwh: g,
      year: r.year ? Number(r.year) : null,
      source: r.source,
      basis: r.basis,
      license: r.license,
      aliases: r.aliases
        ? r.aliases
            .split(';')
            .map(a => a.trim())
            .filter(Boolean)
        : []
    };
  });
}

/**
 * The literal assigned by `NAME = ...` at the start of a line of a Python module, up to its
 * closing bracket, with comments removed (strings are skipped whole, so a "#" or a bracket in a
 * string is not mistaken for one).
 */
function pythonLiteral(path, name) {
  const text = readFileSync(path, 'utf8');
  const start = text.search(new RegExp(`^${name}\\s*=\\s*`, 'm'));
  if (start < 0) {
    throw new Error(`${path}: no top-level ${name} = ... to read`);
  }
  const body = text.slice(start).replace(/^[^=]*=\s*/, '');
  const close = { '(': ')', '{': '}', '[': ']' }[body[0]];
  let out = '';
  let depth = 0;
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (ch === '"' || ch === "'") {
      const end = body.indexOf(ch, i + 1);
      if (end < 0) {
        break;
      }
      out += body.slice(i, end + 1);
      i = end;
    } else if (ch === '#') {
      const newline = body.indexOf('\n', i);
      i = (newline < 0 ? body.length : newline) - 1;
    } else if (!close && ch === '\n') {
      return out.trim();
    } else {
      out += ch;
      if (ch === body[0] && close) {
        depth++;
      } else if (ch === close && --depth === 0) {
        return out;
      }
    }
  }
  throw new Error(`${path}: ${name} is not closed`);
}

const strings = literal => [...literal.matchAll(/"([^"]*)"|'([^']*)'/g)].map(m => m[1] ?? m[2]);

function pythonTuple(path, name) {
  const values = strings(pythonLiteral(path, name));
  if (!values.length) {
    throw new Error(`${path}: ${name} holds no strings`);
  }
  return values;
}

function pythonStrDict(path, name) {
  const values = strings(pythonLiteral(path, name));
  if (!values.length || values.length % 2) {
    throw new Error(`${path}: ${name} is not a dict of strings to strings`);
  }
  return Object.fromEntries(values.flatMap((v, i) => (i % 2 ? [] : [[v, values[i + 1]]])));
}

export function readSchema() {
  const schema = Number(pythonLiteral(join(pkg, 'footprint.py'), 'SCHEMA'));
  if (!Number.isInteger(schema)) {
    throw new Error('nbcarbon/footprint.py: SCHEMA is not an integer');
  }
  return {
    SCHEMA: schema,
    STATUSES: pythonTuple(join(pkg, 'footprint.py'), 'STATUSES'),
    SHARE_BASES: pythonTuple(join(pkg, 'footprint.py'), 'SHARE_BASES'),
    COMPONENTS: pythonTuple(join(pkg, 'meters', 'base.py'), 'COMPONENTS'),
    METHOD_KIND: pythonStrDict(join(pkg, 'meters', 'base.py'), 'METHOD_KIND'),
    METHOD_LABEL: pythonStrDict(join(pkg, 'readout.py'), 'METHOD_LABEL'),
    SHARE_BASIS_LABEL: pythonStrDict(join(pkg, 'readout.py'), 'SHARE_BASIS_LABEL')
  };
}

const HEADER = '// Generated by scripts/generate.mjs from the nbcarbon Python package: do not edit.\n';

export function generateRegions(csvText) {
  const rows = regionsFromCsv(csvText);
  return (
    HEADER +
    '// Grid intensity in gCO2e/kWh from nbcarbon/data/regions.csv; sources and licences:\n' +
    '// nbcarbon/data/DATA_LICENSE (Ember Yearly Electricity Data, CC BY 4.0; US EPA eGRID,\n' +
    '// public domain; Cloud Carbon Footprint, Apache-2.0).\n' +
    "import type { IRegionRow } from './records';\n\n" +
    'export const REGIONS: ReadonlyArray<IRegionRow> = [\n' +
    rows.map(r => '  ' + JSON.stringify(r)).join(',\n') +
    '\n];\n'
  );
}

export function generateSchema(schema) {
  const kinds = new Set(Object.values(schema.METHOD_KIND));
  for (const kind of kinds) {
    if (!['measured', 'sampled', 'estimated'].includes(kind)) {
      throw new Error(`nbcarbon/meters/base.py: METHOD_KIND has the unknown kind '${kind}'`);
    }
  }
  const out = (name, value, type) => `export const ${name}: ${type} = ${JSON.stringify(value, null, 2)};\n`;
  return (
    HEADER +
    '// The record vocabulary (SPEC section 4): footprint.py, meters/base.py, readout.py.\n\n' +
    out('SCHEMA', schema.SCHEMA, 'number') +
    out('STATUSES', schema.STATUSES, 'ReadonlyArray<string>') +
    out('SHARE_BASES', schema.SHARE_BASES, 'ReadonlyArray<string>') +
    out('COMPONENTS', schema.COMPONENTS, 'ReadonlyArray<string>') +
    out('METHOD_KIND', schema.METHOD_KIND, "Readonly<Record<string, 'measured' | 'sampled' | 'estimated'>>") +
    out('METHOD_LABEL', schema.METHOD_LABEL, 'Readonly<Record<string, string>>') +
    out('SHARE_BASIS_LABEL', schema.SHARE_BASIS_LABEL, 'Readonly<Record<string, string>>')
  );
}

const isMain = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const schema = readSchema();
  const outputs = [
    [regionsOut, generateRegions(readFileSync(csvPath, 'utf8'))],
    [schemaOut, generateSchema(schema)]
  ];
  const stale = outputs.filter(([path, text]) => !existsSync(path) || readFileSync(path, 'utf8') !== text);
  if (process.argv.includes('--check')) {
    console.log(stale.length ? `stale: ${stale.map(([p]) => p).join(', ')}` : 'generated files are current');
    process.exit(stale.length ? 1 : 0);
  }
  if (process.argv.includes('--json')) {
    process.stdout.write(JSON.stringify({ regions: regionsFromCsv(readFileSync(csvPath, 'utf8')), schema }));
  } else {
    for (const [path, text] of stale) {
      writeFileSync(path, text);
    }
  }
}
