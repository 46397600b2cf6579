import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { REGIONS } from '../src/regions.generated';
import { findRegion, listingOrder, loadRegions, normalise, regionKind, searchRegions } from '../src/regions';

const CSV = join(__dirname, '..', '..', '..', 'nbcarbon', 'data', 'regions.csv');

describe('the bundled intensity table', () => {
  test('has every row of nbcarbon/data/regions.csv', () => {
    const lines = readFileSync(CSV, 'utf8').trim().split(/\r?\n/);
    assert.equal(REGIONS.length, lines.length - 1);
    assert.equal(new Set(REGIONS.map(r => r.code)).size, REGIONS.length);
  });

  test('reads quoted fields and aliases', () => {
    const kr = REGIONS.find(r => r.code === 'KR')!;
    assert.deepEqual(kr.aliases, ['KOR', 'Korea, Republic of', 'Republic of Korea']);
    const ps = REGIONS.find(r => r.code === 'PS')!;
    assert.equal(ps.name, 'Palestine, State of');
  });

  test('keeps intensity, year, source, basis and licence', () => {
    const pl = REGIONS.find(r => r.code === 'PL')!;
    assert.equal(pl.g_per_kwh, 614.98);
    assert.equal(pl.year, 2024);
    assert.equal(pl.basis, 'lifecycle');
    assert.equal(pl.license, 'CC-BY-4.0');
    assert.match(pl.source, /Ember/);
  });

  test('loads lazily, once', async () => {
    const a = await loadRegions();
    assert.equal(a, await loadRegions());
    assert.equal(a.length, REGIONS.length);
  });
});

describe('lookup and search, as nbcarbon.intensity', () => {
  test('codes, ISO3 codes, names and accents', () => {
    assert.equal(findRegion(REGIONS, 'swe')!.code, 'SE');
    assert.equal(findRegion(REGIONS, 'Poland')!.code, 'PL');
    assert.equal(findRegion(REGIONS, 'AWS eu-north-1')!.code, 'aws:eu-north-1');
    assert.equal(findRegion(REGIONS, "cote d'ivoire")!.code, 'CI');
    assert.equal(findRegion(REGIONS, 'nowhere'), null);
    assert.equal(normalise('Côte-d’Ivoire'), 'cotedivoire');
  });

  test('listing order: world, countries by name, aggregates, sub-national, cloud', () => {
    const codes = listingOrder(REGIONS).map(r => r.code);
    assert.deepEqual(codes.slice(0, 5), ['WORLD', 'AF', 'AL', 'DZ', 'AS']);
    const kinds = listingOrder(REGIONS).map(r => regionKind(r.code));
    assert.equal(kinds[kinds.length - 1], 'cloud');
  });

  test('search puts exact matches first', () => {
    assert.deepEqual(
      searchRegions(REGIONS, 'se')
        .slice(0, 5)
        .map(r => r.code),
      ['SE', 'SN', 'RS', 'SC', 'MS']
    );
    assert.deepEqual(
      searchRegions(REGIONS, 'korea')
        .slice(0, 4)
        .map(r => r.code),
      ['KP', 'KR', 'azure:korea', 'azure:koreacentral']
    );
    assert.equal(searchRegions(REGIONS, '').length, REGIONS.length);
  });
});
