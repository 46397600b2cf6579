/**
 * The side panel: the active notebook's totals, its cells ranked by cost (each a link to its
 * cell), totals by component with how each was measured, and a region and PUE selector that
 * re-prices the view in the browser from the records' energy, saying that the notebook itself
 * still stores the recorded prices until the kernel re-prices it.
 */

import { Clipboard } from '@jupyterlab/apputils';

import { NotebookFootprint } from './footprint';
import {
  cellName,
  formatDuration,
  formatEnergy,
  formatG,
  formatJoules,
  formatMass,
  formatShare,
  howObtained,
  pricingWords,
  shareLine,
  sharesNote
} from './format';
import { leafIcon } from './icons';
import { AS_RECORDED, ICellCost, IPricing, IRegionRow, isRecorded } from './records';
import { findRegion, loadRegions, searchRegions } from './regions';
import { FootprintWidget } from './tracking';

export const PANEL_ID = 'nbcarbon-panel';
const PUE_MIN = 1;
const PUE_MAX = 3;

/** What the panel asks of the application. */
export interface IPanelHost {
  /** Scroll the footprint's notebook to cell `index`, select it and bring it forward. */
  goToCell(footprint: NotebookFootprint, index: number): void;
  /** How many ranked cells to list. */
  maxCells(): number;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { className?: string; text?: string; title?: string; data?: Record<string, string> } = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.className) {
    node.className = props.className;
  }
  if (props.text !== undefined) {
    node.textContent = props.text;
  }
  if (props.title) {
    node.title = props.title;
  }
  if (props.data) {
    Object.assign(node.dataset, props.data);
  }
  node.append(...children);
  return node;
}

export class FootprintPanel extends FootprintWidget {
  constructor(private readonly _host: IPanelHost) {
    super();
    this.id = PANEL_ID;
    this.addClass('nbcarbon-Panel');
    this.title.icon = leafIcon;
    this.title.caption = 'Notebook footprint (nbcarbon)';
    this.node.tabIndex = -1;
    this.node.dataset.nbcarbon = 'panel';

    const header = el('div', { className: 'nbcarbon-Panel-header' });
    const icon = el('span', { className: 'nbcarbon-Panel-headerIcon' });
    leafIcon.element({ container: icon, height: '18px', width: '18px' });
    header.append(icon, el('h2', { text: 'Notebook footprint' }), this._name);
    this._name.className = 'nbcarbon-Panel-notebook';

    this.node.append(header, this._summary, this._pricingBox(), this._notice, this._body);
    this._summary.className = 'nbcarbon-Panel-summary';
    this._notice.className = 'nbcarbon-Panel-notice';
    this._body.className = 'nbcarbon-Panel-body';
    this._render();
  }

  protected onAfterShow(): void {
    void this._fillRegions();
  }

  /** Render again (e.g. after a setting changed). */
  protected onUpdateRequest(): void {
    this._render();
  }

  protected onFootprintChanged(): void {
    const pricing = this.footprint?.pricing ?? AS_RECORDED;
    if (pricing !== this._shownPricing) {
      this._shownPricing = pricing;
      this._syncControls();
    }
    this._render();
  }

  /** The region and PUE controls: built once, kept in step with the notebook's pricing. */
  private _pricingBox(): HTMLElement {
    const box = el('section', { className: 'nbcarbon-Panel-pricing' });
    box.append(el('h3', { text: 'Price this view' }));

    this._filter.type = 'search';
    this._filter.placeholder = 'Filter regions';
    this._filter.title = 'Filter regions by code or name';
    this._filter.className = 'jp-mod-styled nbcarbon-Panel-filter';
    this._filter.setAttribute('aria-label', 'Filter regions');
    this._filter.addEventListener('input', () => void this._fillRegions());

    this._region.className = 'jp-mod-styled nbcarbon-Panel-region';
    this._region.dataset.nbcarbon = 'region';
    this._region.setAttribute('aria-label', 'Region');
    this._region.append(new Option('As recorded', ''));
    this._region.addEventListener('change', () => void this._applyControls());

    this._pue.type = 'number';
    this._pue.min = String(PUE_MIN);
    this._pue.max = String(PUE_MAX);
    this._pue.step = '0.01';
    this._pue.placeholder = 'as recorded';
    this._pue.className = 'jp-mod-styled nbcarbon-Panel-pue';
    this._pue.dataset.nbcarbon = 'pue';
    this._pue.setAttribute('aria-label', 'PUE');
    this._pue.addEventListener('change', () => void this._applyControls());

    const reset = el('button', {
      className: 'jp-mod-styled nbcarbon-Panel-reset',
      text: 'Reset',
      title: 'Show the prices the notebook stores',
      data: { nbcarbon: 'reset' }
    });
    reset.addEventListener('click', () => {
      if (this.footprint) {
        this.footprint.pricing = AS_RECORDED;
      }
    });

    const region = el(
      'label',
      { className: 'nbcarbon-Panel-field' },
      el('span', { text: 'Region' }),
      this._filter,
      this._region
    );
    const pue = el(
      'label',
      { className: 'nbcarbon-Panel-field nbcarbon-Panel-pueRow' },
      el('span', { text: 'PUE' }),
      this._pue,
      reset
    );
    this._pueError.className = 'nbcarbon-Panel-error';
    box.append(region, pue, this._pueError);
    return box;
  }

  private async _fillRegions(): Promise<void> {
    let rows: ReadonlyArray<IRegionRow>;
    try {
      rows = await loadRegions();
    } catch (err) {
      this._pueError.textContent = `The intensity table could not be loaded: ${(err as Error).message}`;
      return;
    }
    this._rows = rows;
    const selected = this._region.value;
    const shown = searchRegions(rows, this._filter.value);
    const keep = selected ? findRegion(rows, selected) : null;
    if (keep && !shown.includes(keep)) {
      shown.unshift(keep);
    }
    const options = [new Option('As recorded', '')];
    for (const r of shown) {
      const year = r.year ? ` ${r.year}` : '';
      const option = new Option(`${r.code} · ${r.name} · ${formatG(r.g_per_kwh, 4)} g/kWh`, r.code);
      option.title = `${r.source}${r.source.includes(String(r.year)) ? '' : year}, ${r.basis}; ${r.license}`;
      options.push(option);
    }
    this._region.replaceChildren(...options);
    this._region.value = selected && keep ? selected : '';
  }

  private async _applyControls(): Promise<void> {
    const fp = this.footprint;
    if (!fp) {
      return;
    }
    const rows = this._rows ?? (await loadRegions());
    const region = this._region.value ? findRegion(rows, this._region.value) : null;
    let pue: number | null = null;
    const text = this._pue.value.trim();
    if (text) {
      const value = Number(text);
      if (!Number.isFinite(value) || value < PUE_MIN || value > PUE_MAX) {
        this._pueError.textContent = `PUE must be a number from ${PUE_MIN} to ${PUE_MAX} (1.0 is no overhead).`;
        return;
      }
      pue = value;
    }
    this._pueError.textContent = '';
    const pricing = region === null && pue === null ? AS_RECORDED : { region, pue };
    this._shownPricing = pricing;
    fp.pricing = pricing;
  }

  private _syncControls(): void {
    const pricing = this.footprint?.pricing ?? AS_RECORDED;
    if (pricing.region && ![...this._region.options].some(o => o.value === pricing.region!.code)) {
      this._region.append(new Option(pricing.region.code, pricing.region.code));
    }
    this._region.value = pricing.region?.code ?? '';
    this._pue.value = pricing.pue === null ? '' : String(pricing.pue);
    this._pueError.textContent = '';
  }

  private _render(): void {
    const fp = this.footprint;
    this._summary.replaceChildren();
    this._notice.replaceChildren();
    this._body.replaceChildren();
    delete this._summary.dataset.energyJ;
    delete this._summary.dataset.co2eG;
    if (!fp || fp.isDisposed) {
      this._name.textContent = '';
      this._summary.append(
        el('p', { className: 'nbcarbon-Panel-empty', text: 'Open a notebook to see its footprint.' })
      );
      return;
    }
    this._name.textContent = fp.panel.title.label;
    const { records, summaries, problems } = fp.collected;
    if (!records.length) {
      this._summary.append(
        el('p', { className: 'nbcarbon-Panel-empty', text: '—' }),
        el('p', {
          className: 'nbcarbon-Panel-hint',
          text:
            'This notebook carries no footprint records. Measure a cell with %%carbon ' +
            '(after %load_ext nbcarbon), or run the whole notebook with `nbcarbon run NB.ipynb`.'
        })
      );
      this._problems(problems);
      return;
    }
    const t = fp.totals;
    const repriced = !isRecorded(fp.pricing);
    this._summary.dataset.energyJ = String(t.energy_j);
    this._summary.dataset.co2eG = String(t.co2e_g);
    this._summary.dataset.cells = String(t.cells);
    this._summary.classList.toggle('nbcarbon-mod-repriced', repriced);
    const nested = t.records - t.cells;
    this._summary.append(
      el(
        'div',
        { className: 'nbcarbon-Panel-figures' },
        el(
          'div',
          { className: 'nbcarbon-Panel-figure', data: { nbcarbon: 'energy' } },
          el('span', { className: 'nbcarbon-Panel-value', text: formatJoules(t.energy_j) }),
          el('span', {
            className: 'nbcarbon-Panel-unit',
            text: formatEnergy(t.energy_j).replace(/^.*\((.*)\)$/, '$1')
          })
        ),
        el(
          'div',
          { className: 'nbcarbon-Panel-figure', data: { nbcarbon: 'co2e' } },
          el('span', { className: 'nbcarbon-Panel-value', text: formatMass(t.co2e_g) }),
          el('span', {
            className: 'nbcarbon-Panel-unit',
            text: repriced ? `CO2e, priced here` : 'CO2e'
          })
        )
      ),
      el('p', {
        className: 'nbcarbon-Panel-meta',
        text:
          `${t.cells} measured ${t.cells === 1 ? 'cell' : 'cells'} · ${formatDuration(t.duration_s)}` +
          (nested > 0 ? ` · ${nested} nested ${nested === 1 ? 'window' : 'windows'} inside them` : '')
      }),
      el('p', {
        className: 'nbcarbon-Panel-meta',
        text: `priced ${pricingWords(fp.pricing, t.regions, t.pues)}`
      })
    );
    const shares = sharesNote(t.components);
    if (shares) {
      this._summary.append(
        el('p', {
          className: 'nbcarbon-Panel-meta nbcarbon-Panel-sharesNote',
          text: shares,
          data: { nbcarbon: 'shares' }
        })
      );
    }
    if (repriced) {
      this._reprice(fp);
    }
    this._components(fp);
    this._ranking(fp);
    const notes: string[] = [];
    if (summaries) {
      notes.push(`${summaries} %carbon summary output(s): not counted as cells.`);
    }
    notes.push(
      'Totals add top-level records only: a loop or track() block inside a measured cell is ' +
        'part of that cell, never added twice.'
    );
    this._body.append(
      el('section', { className: 'nbcarbon-Panel-notes' }, ...notes.map(n => el('p', { text: n })))
    );
    this._problems(problems);
  }

  /** The notice that the view's prices are not the notebook's, and how to re-price the notebook. */
  private _reprice(fp: NotebookFootprint): void {
    const region = fp.pricing.region;
    const command = [
      region ? `%carbon region ${region.code}` : '',
      fp.pricing.pue !== null ? `%carbon pue ${fp.pricing.pue}` : ''
    ]
      .filter(Boolean)
      .join('\n');
    const stored = fp.totals.regions.join(', ');
    const copy = el('button', {
      className: 'jp-mod-styled nbcarbon-Panel-copy',
      text: 'Copy',
      title: 'Copy to the clipboard'
    });
    copy.addEventListener('click', () => Clipboard.copyToSystem(command));
    this._notice.append(
      el(
        'div',
        { className: 'nbcarbon-Panel-reprice', data: { nbcarbon: 'repriced' } },
        el('strong', { text: 'Re-priced in this view only' }),
        el('p', {
          text:
            `Computed in the browser from the records' energy. The notebook still stores the ` +
            `recorded prices (${stored}): its readouts, \`nbcarbon report\` and whoever opens the ` +
            'file see those.'
        }),
        el('p', { text: 'To re-price the records of this kernel session, run:' }),
        el('div', { className: 'nbcarbon-Panel-command' }, el('code', { text: command }), copy)
      )
    );
  }

  private _components(fp: NotebookFootprint): void {
    const t = fp.totals;
    const list = el('div', { className: 'nbcarbon-Panel-components', data: { nbcarbon: 'components' } });
    for (const c of t.components) {
      const how = el('div', { className: 'nbcarbon-Panel-how' });
      for (const m of c.methods) {
        how.append(
          el('span', {
            className: `nbcarbon-Kind nbcarbon-Kind-${m.kind}`,
            text: `${m.kind}: ${m.label}`,
            title: `${m.method}: ${formatEnergy(m.energy_j)}`
          })
        );
      }
      const bar = el('span', { className: `nbcarbon-Bar nbcarbon-Bar-${c.component}` });
      bar.style.width = t.energy_j > 0 ? `${Math.max(1, (c.energy_j / t.energy_j) * 100)}%` : '0';
      list.append(
        el(
          'div',
          { className: 'nbcarbon-Panel-componentRow', data: { component: c.component } },
          el('span', { className: 'nbcarbon-Panel-component', text: c.component }),
          el('span', { className: 'nbcarbon-Panel-num', text: formatJoules(c.energy_j) }),
          el('span', {
            className: 'nbcarbon-Panel-num nbcarbon-Panel-share',
            text: formatShare(c.energy_j, t.energy_j)
          }),
          bar,
          how,
          ...c.shares.map(s =>
            el('div', {
              className: 'nbcarbon-Panel-machineShare',
              text: shareLine(c.component, s),
              data: { nbcarbon: 'share' }
            })
          )
        )
      );
    }
    this._body.append(el('section', {}, el('h3', { text: 'By component' }), list));
  }

  private _ranking(fp: NotebookFootprint): void {
    const ranked = fp.ranked;
    const limit = Math.max(1, this._host.maxCells());
    const top = ranked.filter(c => !c.nestedOnly);
    const max = top.reduce((m, c) => Math.max(m, c.co2e_g), 0);
    const list = el('ol', { className: 'nbcarbon-Panel-cells', data: { nbcarbon: 'cells' } });
    for (const cost of ranked.slice(0, limit)) {
      list.append(this._cellItem(fp, cost, max));
    }
    const section = el(
      'section',
      {},
      el('h3', { text: 'Cells by cost' }),
      el('p', { className: 'nbcarbon-Panel-hint', text: 'Click a cell to scroll to it.' }),
      list
    );
    if (ranked.length > limit) {
      section.append(
        el('p', {
          className: 'nbcarbon-Panel-hint',
          text: `${ranked.length - limit} more cell(s) not listed (setting "Cells listed in the panel").`
        })
      );
    }
    this._body.append(section);
  }

  private _cellItem(fp: NotebookFootprint, cost: ICellCost, max: number): HTMLElement {
    const records = cost.top.length ? cost.top : cost.nested;
    const name = cellName(records, cost.cell);
    const link = el('button', {
      className: 'nbcarbon-Panel-cellLink',
      title: `Go to cell ${cost.cell + 1}: ${howObtained(records.flatMap(r => r.components))}`,
      data: { cell: String(cost.cell), co2eG: String(cost.co2e_g), energyJ: String(cost.energy_j) }
    });
    const bar = el('span', { className: 'nbcarbon-Panel-cellBar' });
    bar.style.width = max > 0 && !cost.nestedOnly ? `${Math.max(1, (cost.co2e_g / max) * 100)}%` : '0';
    const extra: string[] = [];
    const status = records.find(r => r.status !== 'ok')?.status;
    if (status) {
      extra.push(status);
    }
    for (const r of records) {
      if (r.iterations) {
        extra.push(`loop of ${r.iterations.energy_j.length}`);
      }
    }
    if (cost.nested.length && !cost.nestedOnly) {
      extra.push(`${cost.nested.length} nested`);
    }
    if (cost.nestedOnly) {
      extra.push('nested in another cell, counted there');
    }
    link.append(
      el('span', { className: 'nbcarbon-Panel-cellName', text: `${name}` }),
      el('span', {
        className: 'nbcarbon-Panel-cellWhere',
        text: `cell ${cost.cell + 1}` + (extra.length ? ` · ${extra.join(' · ')}` : '')
      }),
      el('span', {
        className: 'nbcarbon-Panel-cellCost',
        text: [
          formatJoules(cost.energy_j),
          `${formatMass(cost.co2e_g)} CO2e`,
          formatDuration(cost.duration_s)
        ]
          .map(unbroken)
          .join(' · ')
      }),
      bar
    );
    link.addEventListener('click', () => this._host.goToCell(fp, cost.cell));
    const item = el('li', {}, link);
    item.classList.toggle('nbcarbon-mod-nested', cost.nestedOnly);
    return item;
  }

  private _problems(problems: string[]): void {
    if (!problems.length) {
      return;
    }
    const list = el('ul', { className: 'nbcarbon-Panel-problems' });
    for (const p of problems.slice(0, 20)) {
      list.append(el('li', { text: p }));
    }
    this._body.append(
      el(
        'section',
        {},
        el('h3', { text: `${problems.length} record(s) not counted` }),
        el('p', {
          className: 'nbcarbon-Panel-hint',
          text: 'They could not be read (as `nbcarbon report` would say):'
        }),
        list
      )
    );
  }

  private _shownPricing: IPricing | null = null;
  private _rows: ReadonlyArray<IRegionRow> | null = null;
  private _name = document.createElement('div');
  private _summary = document.createElement('section');
  private _notice = document.createElement('div');
  private _body = document.createElement('div');
  private _filter = document.createElement('input');
  private _region = document.createElement('select');
  private _pue = document.createElement('input');
  private _pueError = document.createElement('div');
}

/** A number and its unit kept on one line ("0.11 s", never "0.11" then "s" alone below it). */
function unbroken(text: string): string {
  return text.replace(/ /g, '\u00a0');
}
