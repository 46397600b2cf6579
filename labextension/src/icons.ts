import { LabIcon } from '@jupyterlab/ui-components';

import leafSvg from '../style/leaf.svg';

/** The extension's icon (status bar, side panel tab, settings), themed by `jp-icon3`. */
export const leafIcon = new LabIcon({ name: 'nbcarbon:leaf', svgstr: leafSvg });

/** A `<span class="className">` holding the icon, `size` square, centred (status bar, badges). */
export function leafElement(className: string, size: string): HTMLElement {
  const icon = document.createElement('span');
  icon.className = className;
  leafIcon.element({ container: icon, height: size, width: size, elementPosition: 'center' });
  return icon;
}
