import { LabIcon } from '@jupyterlab/ui-components';

import leafSvg from '../style/leaf.svg';

/** The extension's icon (status bar, side panel tab, settings), themed by `jp-icon3`. */
export const leafIcon = new LabIcon({ name: 'nbcarbon:leaf', svgstr: leafSvg });
