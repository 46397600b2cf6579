/**
 * The status bar item: the active notebook's total energy and CO2e from its records (top-level
 * records only), a dash when it has none. Clicking it opens the side panel.
 */

import { Widget } from '@lumino/widgets';

import { NotebookFootprint } from './footprint';
import { formatCost, formatDuration, formatEnergy, formatMass, pricingWords } from './format';
import { leafIcon } from './icons';
import { isRecorded } from './records';

export class FootprintStatus extends Widget {
  constructor(private readonly _open: () => void) {
    super();
    this.addClass('nbcarbon-Status');
    this.addClass('jp-mod-highlighted');
    this.node.tabIndex = 0;
    this.node.setAttribute('role', 'button');
    this.node.dataset.nbcarbon = 'status';
    const icon = document.createElement('span');
    icon.className = 'nbcarbon-Status-icon';
    leafIcon.element({ container: icon, height: '14px', width: '14px', elementPosition: 'center' });
    this._text.className = 'jp-StatusBar-TextItem nbcarbon-Status-text';
    this.node.append(icon, this._text);
    this.node.addEventListener('click', () => this._open());
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        this._open();
      }
    });
    this._render();
  }

  /** The notebook whose footprint is shown, or null (nothing shown). */
  get footprint(): NotebookFootprint | null {
    return this._footprint;
  }

  set footprint(value: NotebookFootprint | null) {
    if (value === this._footprint) {
      return;
    }
    this._footprint?.changed.disconnect(this._render, this);
    this._footprint = value;
    value?.changed.connect(this._render, this);
    this._render();
  }

  dispose(): void {
    this.footprint = null;
    super.dispose();
  }

  private _render(): void {
    const fp = this._footprint;
    const data = this.node.dataset;
    if (!fp || fp.isDisposed || fp.collected.records.length === 0) {
      this._text.textContent = '—';
      this.node.title = fp
        ? 'nbcarbon: this notebook carries no footprint records yet (measure a cell with %%carbon)'
        : 'nbcarbon: no notebook is active';
      this.node.classList.remove('nbcarbon-mod-repriced');
      delete data.energyJ;
      delete data.co2eG;
      data.cells = '0';
      return;
    }
    const t = fp.totals;
    const repriced = !isRecorded(fp.pricing);
    const where = repriced && fp.pricing.region ? ` (${fp.pricing.region.code})` : repriced ? ' (PUE)' : '';
    this._text.textContent = formatCost(t.energy_j, t.co2e_g) + where;
    this.node.classList.toggle('nbcarbon-mod-repriced', repriced);
    data.energyJ = String(t.energy_j);
    data.co2eG = String(t.co2e_g);
    data.cells = String(t.cells);
    const lines = [
      `nbcarbon: ${t.cells} measured ${t.cells === 1 ? 'cell' : 'cells'} in this notebook` +
        (t.records > t.cells ? ` (+${t.records - t.cells} nested windows, inside them)` : ''),
      `${formatEnergy(t.energy_j)} · ${formatMass(t.co2e_g)} CO2e · ${formatDuration(t.duration_s)}`,
      `priced ${pricingWords(fp.pricing, t.regions, t.pues)}`
    ];
    if (repriced) {
      lines.push('Re-priced in this view only: the notebook still stores the recorded prices.');
    }
    if (fp.collected.problems.length) {
      lines.push(`${fp.collected.problems.length} record(s) could not be read (see the panel)`);
    }
    lines.push('Click for the footprint panel.');
    this.node.title = lines.join('\n');
  }

  private _footprint: NotebookFootprint | null = null;
  private _text = document.createElement('span');
}
