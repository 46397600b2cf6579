/**
 * Per-cell badges ("24.4 J · 0.243 mg CO2e") under each measured cell's input, as
 * jupyterlab-execute-time shows a cell's timing, and, when asked, the readout outputs collapsed
 * so only the badges remain (the outputs stay in the notebook; only the view hides them).
 */

import type { Cell, CodeCell } from '@jupyterlab/cells';
import type { NotebookPanel } from '@jupyterlab/notebook';
import type { PanelLayout } from '@lumino/widgets';
import { Widget } from '@lumino/widgets';

import { NotebookFootprint } from './footprint';
import {
  cellName,
  componentLines,
  formatCost,
  formatDuration,
  formatEnergy,
  formatMass,
  pricingWords
} from './format';
import { leafElement } from './icons';
import { ICellCost, METADATA_KEY, isRecorded } from './records';

export interface IBadgeOptions {
  /** Show a badge on each measured cell. */
  badges: boolean;
  /** Hide the readout outputs (those carrying a cell record); implies badges. */
  collapseReadouts: boolean;
}

const COLLAPSED = 'nbcarbon-mod-collapsedReadout';
const ONLY_READOUTS = 'nbcarbon-mod-onlyReadouts';

/** A cell's badge: a small widget placed right after the cell's input. */
class Badge extends Widget {
  constructor() {
    super();
    this.addClass('nbcarbon-Badge');
    this.node.dataset.nbcarbon = 'badge';
    this._text.className = 'nbcarbon-Badge-text';
    this.node.append(leafElement('nbcarbon-Badge-icon', '12px'), this._text);
  }

  update_(text: string, title: string, data: Record<string, string>, classes: Record<string, boolean>): void {
    if (this._text.textContent !== text) {
      this._text.textContent = text;
    }
    this.node.title = title;
    Object.assign(this.node.dataset, data);
    for (const [name, on] of Object.entries(classes)) {
      this.node.classList.toggle(name, on);
    }
  }

  private _text = document.createElement('span');
}

export class CellBadges {
  constructor(
    readonly panel: NotebookPanel,
    readonly footprint: NotebookFootprint,
    private _options: IBadgeOptions
  ) {
    footprint.changed.connect(this._schedule, this);
    this._schedule();
  }

  set options(value: IBadgeOptions) {
    this._options = value;
    this._schedule();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this.footprint.changed.disconnect(this._schedule, this);
    for (const badge of this._badges.values()) {
      badge.dispose();
    }
    this._badges.clear();
    for (const name of [COLLAPSED, ONLY_READOUTS]) {
      this.panel.node.querySelectorAll(`.${name}`).forEach(n => n.classList.remove(name));
    }
  }

  private _schedule(): void {
    if (this._frame === null && !this._disposed) {
      this._frame = requestAnimationFrame(() => {
        this._frame = null;
        this._apply();
      });
    }
  }

  /** Put a badge on each measured cell and none elsewhere; collapse or show readouts. */
  private _apply(): void {
    if (this._disposed || this.panel.isDisposed || this.footprint.isDisposed) {
      return;
    }
    const showBadges = this._options.badges || this._options.collapseReadouts;
    const costs = this.footprint.cells;
    const cells = this.panel.content.widgets;
    const keep = new Set<Cell>();
    cells.forEach((cell, index) => {
      const cost = costs.get(index);
      if (cell.isPlaceholder()) {
        this._whenReady(cell);
      }
      this._collapse(cell, cost !== undefined && this._options.collapseReadouts);
      if (!showBadges || cost === undefined || cell.isPlaceholder()) {
        return;
      }
      keep.add(cell);
      this._badge(cell, index, cost);
    });
    for (const [cell, badge] of this._badges) {
      if (!keep.has(cell)) {
        badge.dispose();
        this._badges.delete(cell);
      }
    }
  }

  private _badge(cell: Cell, index: number, cost: ICellCost): void {
    let badge = this._badges.get(cell);
    const layout = cell.layout as PanelLayout | null;
    const inputWrapper = cell.inputArea?.parent;
    if (!layout || !inputWrapper) {
      return;
    }
    if (!badge || badge.isDisposed || badge.parent !== cell) {
      badge = new Badge();
      this._badges.set(cell, badge);
      cell.disposed.connect(() => {
        badge?.dispose();
        this._badges.delete(cell);
      });
      layout.insertWidget(layout.widgets.indexOf(inputWrapper) + 1, badge);
    }
    const fp = this.footprint;
    const repriced = !isRecorded(fp.pricing);
    const records = cost.top.length ? cost.top : cost.nested;
    const lines = [
      `nbcarbon · ${cellName(records, index)} · ${formatDuration(cost.duration_s)}`,
      `${formatEnergy(cost.energy_j)} · ${formatMass(cost.co2e_g)} CO2e`,
      ...componentLines(cost.components).map(l => '  ' + l)
    ];
    if (cost.nestedOnly) {
      lines.push('Nested in a window measured in another cell: counted there, not added again.');
    } else if (cost.nested.length) {
      lines.push(`Includes ${cost.nested.length} nested window(s) (loops, track() blocks), counted once.`);
    }
    const loops = [...cost.top, ...cost.nested].filter(r => r.iterations);
    for (const r of loops) {
      lines.push(`Loop: ${r.iterations!.energy_j.length} iterations (${r.iterations!.label})`);
    }
    const regions = [...new Set(records.map(r => r.region.code))];
    const pues = [...new Set(records.map(r => r.pue))];
    lines.push(`Priced ${pricingWords(fp.pricing, regions, pues)}`);
    if (repriced) {
      lines.push('Re-priced in this view only: the notebook stores the recorded price.');
    }
    const warnings = records.reduce((n, r) => n + r.warnings.length, 0);
    if (warnings) {
      lines.push(`${warnings} warning(s) in the record: see the readout`);
    }
    badge.update_(
      formatCost(cost.energy_j, cost.co2e_g),
      lines.join('\n'),
      { energyJ: String(cost.energy_j), co2eG: String(cost.co2e_g), cell: String(index) },
      {
        'nbcarbon-mod-repriced': repriced,
        'nbcarbon-mod-nested': cost.nestedOnly,
        'nbcarbon-mod-error': records.some(r => r.status !== 'ok')
      }
    );
  }

  /** Hide (or show again) the outputs of `cell` that carry a cell record; when they are all
   * it has, hide its (then empty) output area too so the cell stays compact. */
  private _collapse(cell: Cell, collapse: boolean): void {
    const outputArea = (cell as CodeCell).outputArea;
    if (!outputArea || cell.model.type !== 'code') {
      return;
    }
    const model = outputArea.model;
    const children = outputArea.widgets;
    let readouts = 0;
    for (let i = 0; i < children.length; i++) {
      const meta = i < model.length ? model.get(i).metadata : undefined;
      const raw = meta ? (meta as Record<string, unknown>)[METADATA_KEY] : undefined;
      const isReadout =
        typeof raw === 'object' && raw !== null && (raw as Record<string, unknown>)['kind'] !== 'summary';
      readouts += Number(isReadout);
      children[i].node.classList.toggle(COLLAPSED, collapse && isReadout);
    }
    cell.node.classList.toggle(
      ONLY_READOUTS,
      collapse && readouts > 0 && readouts === children.length && children.length === model.length
    );
  }

  private _whenReady(cell: Cell): void {
    if (!this._waiting.has(cell)) {
      this._waiting.add(cell);
      void cell.ready.then(() => this._schedule());
    }
  }

  private _badges = new Map<Cell, Badge>();
  private _waiting = new WeakSet<Cell>();
  private _frame: number | null = null;
  private _disposed = false;
}
