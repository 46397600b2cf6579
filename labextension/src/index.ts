/**
 * nbcarbon in JupyterLab 4 and Notebook 7: the footprint records a notebook already carries
 * (`outputs[i].metadata.nbcarbon`, SPEC section 4) shown in the status bar, a side panel and a
 * badge on each measured cell. Reads the notebook model only: no kernel and no server
 * extension needed, so it works on any saved notebook. With a kernel that loaded nbcarbon, a
 * re-price (`%carbon region`, `%carbon pue`) reaches the readouts over a comm (repricer.ts).
 */

import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Signal } from '@lumino/signaling';

import { CellBadges, IBadgeOptions } from './badges';
import { NotebookFootprint } from './footprint';
import { leafIcon } from './icons';
import { FootprintPanel, PANEL_ID } from './panel';
import { AS_RECORDED, isRecorded } from './records';
import { Repricer } from './repricer';
import { FootprintStatus } from './statusbar';

const PLUGIN_ID = 'nbcarbon:plugin';

export namespace CommandIDs {
  export const openPanel = 'nbcarbon:open-panel';
  export const toggleBadges = 'nbcarbon:toggle-badges';
  export const toggleBadgesOnly = 'nbcarbon:toggle-badges-only';
  export const resetPricing = 'nbcarbon:reset-pricing';
}

interface ISettings extends IBadgeOptions {
  statusBar: boolean;
  panelCells: number;
}

const DEFAULTS: ISettings = { statusBar: true, badges: true, collapseReadouts: false, panelCells: 50 };

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Energy and CO2e of notebook cells from their nbcarbon records: status bar, panel, badges.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IStatusBar, ISettingRegistry, ICommandPalette, ILabShell],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    statusBar: IStatusBar | null,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null,
    labShell: ILabShell | null
  ) => {
    let settings: ISettings = { ...DEFAULTS };
    const footprints = new Map<NotebookPanel, NotebookFootprint>();
    const badges = new Map<NotebookPanel, CellBadges>();
    const settingsChanged = new Signal<object, void>({});

    const footprintOf = (panel: NotebookPanel | null): NotebookFootprint | null =>
      panel ? (footprints.get(panel) ?? null) : null;

    const panel = new FootprintPanel({
      goToCell: (fp, index) => {
        const nb = fp.panel;
        const cell = nb.content.widgets[index];
        if (!cell) {
          return;
        }
        app.shell.activateById(nb.id);
        nb.content.activeCellIndex = index;
        void nb.content.scrollToCell(cell, 'center').then(() => {
          cell.node.classList.add('nbcarbon-mod-flash');
          setTimeout(() => cell.node.classList.remove('nbcarbon-mod-flash'), 1600);
        });
      },
      maxCells: () => settings.panelCells
    });
    app.shell.add(panel, 'right', { rank: 950 });

    const status = new FootprintStatus(() => void app.commands.execute(CommandIDs.openPanel));

    const follow = (): void => {
      const fp = footprintOf(tracker.currentWidget);
      panel.footprint = fp;
      status.footprint = fp;
      settingsChanged.emit();
    };

    const adopt = (nb: NotebookPanel): void => {
      if (footprints.has(nb)) {
        return;
      }
      const fp = new NotebookFootprint(nb);
      footprints.set(nb, fp);
      badges.set(nb, new CellBadges(nb, fp, settings));
      const repricer = new Repricer(nb);
      nb.disposed.connect(() => {
        repricer.dispose();
        badges.get(nb)?.dispose();
        badges.delete(nb);
        fp.dispose();
        footprints.delete(nb);
        follow();
      });
    };

    tracker.forEach(adopt);
    tracker.widgetAdded.connect((_, nb) => {
      adopt(nb);
      follow();
    });
    tracker.currentChanged.connect(follow);
    follow();

    if (statusBar) {
      statusBar.registerStatusItem(PLUGIN_ID, {
        item: status,
        align: 'left',
        rank: 4,
        // Shown while a notebook is the main area's current widget (in JupyterLab; elsewhere,
        // while there is a notebook), as JupyterLab's own notebook items are.
        isActive: () =>
          settings.statusBar &&
          tracker.currentWidget !== null &&
          (labShell === null || labShell.currentWidget === tracker.currentWidget),
        activeStateChanged: settingsChanged
      });
      labShell?.currentChanged.connect(() => settingsChanged.emit());
    }

    const applySettings = (s: ISettings): void => {
      settings = s;
      for (const b of badges.values()) {
        b.options = { badges: s.badges, collapseReadouts: s.collapseReadouts };
      }
      panel.update();
      settingsChanged.emit();
      app.commands.notifyCommandChanged(CommandIDs.toggleBadges);
      app.commands.notifyCommandChanged(CommandIDs.toggleBadgesOnly);
    };

    app.commands.addCommand(CommandIDs.openPanel, {
      label: 'Show Notebook Footprint (nbcarbon)',
      caption: 'Energy and CO2e of the active notebook, by cell and by component',
      icon: leafIcon,
      execute: () => {
        app.shell.activateById(PANEL_ID);
      }
    });

    let registry: ISettingRegistry.ISettings | null = null;
    const setSetting = (key: keyof ISettings, value: boolean): void => {
      if (registry) {
        void registry.set(key, value);
      } else {
        applySettings({ ...settings, [key]: value });
      }
    };

    app.commands.addCommand(CommandIDs.toggleBadges, {
      label: 'Show Footprint Badges on Cells (nbcarbon)',
      caption: 'A badge with energy and CO2e under each measured cell',
      isToggled: () => settings.badges,
      execute: () => setSetting('badges', !settings.badges)
    });
    app.commands.addCommand(CommandIDs.toggleBadgesOnly, {
      label: 'Show Footprint Badges Only, Collapse Readouts (nbcarbon)',
      caption: 'Hide the readout outputs in the view and keep the badges (the notebook file is unchanged)',
      isToggled: () => settings.collapseReadouts,
      execute: () => setSetting('collapseReadouts', !settings.collapseReadouts)
    });
    app.commands.addCommand(CommandIDs.resetPricing, {
      label: 'Show Footprint Prices as Recorded (nbcarbon)',
      caption: "Undo the view's re-pricing: show what the notebook stores",
      isEnabled: () => {
        const fp = footprintOf(tracker.currentWidget);
        return fp !== null && !isRecorded(fp.pricing);
      },
      execute: () => {
        const fp = footprintOf(tracker.currentWidget);
        if (fp) {
          fp.pricing = AS_RECORDED;
        }
      }
    });

    if (palette) {
      const category = 'nbcarbon';
      for (const command of Object.values(CommandIDs)) {
        palette.addItem({ command, category });
      }
    }

    if (settingRegistry) {
      void settingRegistry
        .load(PLUGIN_ID)
        .then(loaded => {
          registry = loaded;
          const read = (): void => {
            const c = loaded.composite as Partial<ISettings>;
            applySettings({
              statusBar: c.statusBar ?? DEFAULTS.statusBar,
              badges: c.badges ?? DEFAULTS.badges,
              collapseReadouts: c.collapseReadouts ?? DEFAULTS.collapseReadouts,
              panelCells: c.panelCells ?? DEFAULTS.panelCells
            });
          };
          loaded.changed.connect(read);
          read();
        })
        .catch(reason => console.error('nbcarbon: could not load settings', reason));
    }
  }
};

export default plugin;
