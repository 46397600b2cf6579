/**
 * The status bar item: the active notebook's total energy and CO2e from its records (top-level
 * records only), a dash when it has none. Clicking it opens the side panel.
 */

import { formatCost, formatDuration, formatEnergy, formatMass, pricingWords } from './format';
import { leafElement } from './icons';
import { isRecorded } from './records';
import { FootprintWidget } from './tracking';

export class FootprintStatus extends FootprintWidget {
  constructor(private readonly _open: () => void) {
    super();
    this.addClass('nbcarbon-Status');
    this.addClass('jp-mod-highlighted');
    this.node.tabIndex = 0;
    this.node.setAttribute('role', 'button');
    this.node.dataset.nbcarbon = 'status';
    this._text.className = 'jp-StatusBar-TextItem nbcarbon-Status-text';
    this.node.append(leafElement('nbcarbon-Status-icon', '14px'), this._text);
    this.node.addEventListener('click', () => this._open());
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        this._open();
      }
    });
    this._render();
  }

  protected onFootprintChanged(): void {
    this._render();
  }

  private _render(): void {
    const fp = this.footprint;
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

  private _text = document.createElement('span');
}
