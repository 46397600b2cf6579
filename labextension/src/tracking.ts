/**
 * A widget that shows the active notebook's footprint (the status bar item, the side panel):
 * it follows one `NotebookFootprint` at a time, rendering again whenever it changes.
 */

import { Widget } from '@lumino/widgets';

import { NotebookFootprint } from './footprint';

export abstract class FootprintWidget extends Widget {
  /** The notebook whose footprint is shown, or null (nothing shown). */
  get footprint(): NotebookFootprint | null {
    return this._footprint;
  }

  set footprint(value: NotebookFootprint | null) {
    if (value === this._footprint) {
      return;
    }
    this._footprint?.changed.disconnect(this.onFootprintChanged, this);
    this._footprint = value;
    value?.changed.connect(this.onFootprintChanged, this);
    this.onFootprintChanged();
  }

  dispose(): void {
    this.footprint = null;
    super.dispose();
  }

  /** Called when another footprint is shown, or the shown one changed (records or pricing). */
  protected abstract onFootprintChanged(): void;

  private _footprint: NotebookFootprint | null = null;
}
