/**
 * The bundled intensity table in the browser (generated from nbcarbon/data/regions.csv by
 * scripts/generate.mjs), listed and searched as `nbcarbon.intensity` does. Pure.
 */

import type { IRegionRow } from './records';

const AGGREGATES = new Set(
  'EU EUROPE ASIA AFRICA ASEAN G20 G7 OECD OCEANIA NORTH-AMERICA MIDDLE-EAST LATIN-AMERICA'.split(' ')
);
const KIND_ORDER: Record<string, number> = { world: 0, country: 1, aggregate: 2, subnational: 3, cloud: 4 };

/** `world`, `country`, `aggregate`, `subnational` or `cloud`, from the code (intensity._kind). */
export function regionKind(code: string): string {
  if (code === 'WORLD') {
    return 'world';
  }
  if (AGGREGATES.has(code)) {
    return 'aggregate';
  }
  if (code.includes(':')) {
    return 'cloud';
  }
  if (/^[A-Za-z]{2}$/.test(code)) {
    return 'country';
  }
  if (code.length >= 4 && code[2] === '-' && /^[A-Za-z]{2}/.test(code)) {
    return 'subnational';
  }
  return 'aggregate';
}

/** Accents dropped, case folded, only ASCII letters and digits kept (intensity.normalise). */
export function normalise(text: string): string {
  return text
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '');
}

/** WORLD, countries by name, aggregates, sub-national and cloud regions by code. */
export function listingOrder(rows: ReadonlyArray<IRegionRow>): IRegionRow[] {
  const key = (r: IRegionRow): [number, string] => {
    const kind = regionKind(r.code);
    return [KIND_ORDER[kind], kind === 'cloud' || kind === 'subnational' ? r.code : normalise(r.name)];
  };
  return [...rows].sort((a, b) => {
    const [ka, sa] = key(a);
    const [kb, sb] = key(b);
    return ka - kb || (sa < sb ? -1 : sa > sb ? 1 : 0);
  });
}

function keysOf(r: IRegionRow): string[] {
  return [r.code, r.name, ...r.aliases].map(normalise).filter(Boolean);
}

/** The region a code, ISO3 code, name or alias names (any case, accents optional), or null. */
export function findRegion(rows: ReadonlyArray<IRegionRow>, text: string): IRegionRow | null {
  const key = normalise(text);
  if (!key) {
    return null;
  }
  return rows.find(r => keysOf(r).includes(key)) ?? null;
}

/** Regions matching `text`: exact matches first, then prefixes, then substrings, in listing order. */
export function searchRegions(rows: ReadonlyArray<IRegionRow>, text: string): IRegionRow[] {
  const ordered = listingOrder(rows);
  if (!text.trim()) {
    return ordered;
  }
  const key = normalise(text);
  if (!key) {
    return [];
  }
  const ranked: [number, number, IRegionRow][] = [];
  ordered.forEach((r, position) => {
    const keys = keysOf(r);
    const rank = keys.includes(key)
      ? 0
      : keys.some(k => k.startsWith(key))
        ? 1
        : keys.some(k => k.includes(key))
          ? 2
          : -1;
    if (rank >= 0) {
      ranked.push([rank, position, r]);
    }
  });
  return ranked.sort((a, b) => a[0] - b[0] || a[1] - b[1]).map(([, , r]) => r);
}

/** The table, loaded once and only when first needed (it is a separate chunk of the bundle). */
let table: Promise<ReadonlyArray<IRegionRow>> | null = null;

export function loadRegions(): Promise<ReadonlyArray<IRegionRow>> {
  if (table === null) {
    table = import('./regions.generated').then(m => m.REGIONS);
  }
  return table;
}
