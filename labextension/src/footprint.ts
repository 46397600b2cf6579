/**
 * One notebook's footprint as the interface shows it: the records its outputs carry (read from
 * the notebook model, so it works with or without a kernel), kept current as outputs change,
 * and the pricing the view uses. The status bar, the panel and the badges all read this.
 */

import type { ICellModel, ICodeCellModel } from '@jupyterlab/cells';
import type { NotebookPanel } from '@jupyterlab/notebook';
import { ISignal, Signal } from '@lumino/signaling';

import {
  AS_RECORDED,
  ICellCost,
  ICellOutputs,
  ICollected,
  IPricing,
  ITotals,
  cellCosts,
  collect,
  rankCells,
  totals
} from './records';

/** How long after the last output change the records are read again (ms). */
const SETTLE_MS = 120;

export class NotebookFootprint {
  constructor(readonly panel: NotebookPanel) {
    const model = panel.model;
    if (model) {
      model.cells.changed.connect(this._onCellsChanged, this);
      for (let i = 0; i < model.cells.length; i++) {
        this._watch(model.cells.get(i));
      }
    }
    void panel.context.ready.then(() => {
      if (!this._disposed) {
        const m = panel.model;
        if (m) {
          for (let i = 0; i < m.cells.length; i++) {
            this._watch(m.cells.get(i));
          }
        }
        this.refresh();
      }
    });
    this.refresh();
  }

  /** Emitted after the records or the pricing changed (debounced while outputs stream in). */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get collected(): ICollected {
    return this._collected;
  }

  /** How the view prices energy; `AS_RECORDED` shows what the notebook stores. */
  get pricing(): IPricing {
    return this._pricing;
  }

  set pricing(value: IPricing) {
    this._pricing = value;
    this._memo = null;
    this._changed.emit();
  }

  get totals(): ITotals {
    return this._derived().totals;
  }

  /** Per cell index, what its records cost under the current pricing. */
  get cells(): Map<number, ICellCost> {
    return this._derived().cells;
  }

  get ranked(): ICellCost[] {
    return this._derived().ranked;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Read the records again now. */
  refresh(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    if (this._disposed) {
      return;
    }
    this._collected = collect(readCells(this.panel));
    this._memo = null;
    this._changed.emit();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    if (this._timer !== null) {
      clearTimeout(this._timer);
    }
    Signal.clearData(this);
  }

  private _derived(): { totals: ITotals; cells: Map<number, ICellCost>; ranked: ICellCost[] } {
    if (this._memo === null) {
      const found = this._collected.records;
      this._memo = {
        totals: totals(found, this._pricing),
        cells: cellCosts(found, this._pricing),
        ranked: rankCells(found, this._pricing)
      };
    }
    return this._memo;
  }

  private _schedule(): void {
    if (this._timer === null && !this._disposed) {
      this._timer = setTimeout(() => this.refresh(), SETTLE_MS);
    }
  }

  private _watch(cell: ICellModel): void {
    if (cell.type === 'code') {
      (cell as ICodeCellModel).outputs.changed.connect(this._onOutputsChanged, this);
    }
  }

  private _onCellsChanged(_: unknown, args: { newValues: ICellModel[] }): void {
    for (const cell of args.newValues) {
      this._watch(cell);
    }
    this._schedule();
  }

  private _onOutputsChanged(): void {
    this._schedule();
  }

  private _changed = new Signal<this, void>(this);
  private _collected: ICollected = { records: [], summaries: 0, problems: [] };
  private _pricing: IPricing = AS_RECORDED;
  private _memo: { totals: ITotals; cells: Map<number, ICellCost>; ranked: ICellCost[] } | null = null;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _disposed = false;
}

/** Each cell's outputs' metadata, in notebook order (markdown and raw cells have none). */
export function readCells(panel: NotebookPanel): ICellOutputs[] {
  const model = panel.model;
  const out: ICellOutputs[] = [];
  if (!model) {
    return out;
  }
  for (let i = 0; i < model.cells.length; i++) {
    const cell = model.cells.get(i);
    const metadata: unknown[] = [];
    if (cell.type === 'code') {
      const outputs = (cell as ICodeCellModel).outputs;
      for (let j = 0; j < outputs.length; j++) {
        metadata.push(outputs.get(j).metadata);
      }
    }
    out.push({ outputs: metadata });
  }
  return out;
}
