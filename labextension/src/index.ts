/**
 * jupyter-serving: a "Model Serving" sidebar for JupyterLab.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Clipboard, ICommandPalette } from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';

import { logsCell, statusCell, trafficCell } from './model';
import { insertCell } from './notebook';
import { ServingPanel } from './panel';
import { queryTemplate } from './request';

const SERVING_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M4 3h16a1 1 0 0 1 1 1v4a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1zm1 2v2h2V5H5zm4 0v2h9V5H9z"/>
    <path d="M4 10h16a1 1 0 0 1 1 1v4a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1v-4a1 1 0 0 1 1-1zm1 2v2h2v-2H5zm4 0v2h9v-2H9z"/>
    <path d="M11 17h2v2h4v2H7v-2h4z"/>
  </g>
</svg>`;

export const servingIcon = new LabIcon({ name: 'jupyter-serving:serving', svgstr: SERVING_SVG });

namespace CommandIDs {
  export const open = 'jupyter-serving:open';
  export const refresh = 'jupyter-serving:refresh';
  export const openStatus = 'jupyter-serving:open-status';
  export const openTraffic = 'jupyter-serving:open-traffic';
  export const openLogs = 'jupyter-serving:open-logs';
  export const insertQuery = 'jupyter-serving:insert-query-cell';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-serving:plugin',
  description:
    'A Model Serving sidebar: endpoints, their state and traffic; stop, start, delete, query.',
  autoStart: true,
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    const { commands } = app;
    const panel = new ServingPanel({
      openStatus: name => commands.execute(CommandIDs.openStatus, { name }) as Promise<void>,
      openTraffic: name => commands.execute(CommandIDs.openTraffic, { name }) as Promise<void>,
      openLogs: name => commands.execute(CommandIDs.openLogs, { name }) as Promise<void>,
      insertQueryCell: name => commands.execute(CommandIDs.insertQuery, { name }) as Promise<void>,
      copy: async text => {
        try {
          await navigator.clipboard.writeText(text);
        } catch {
          Clipboard.copyToSystem(text); // no clipboard permission: the execCommand fallback
        }
      }
    });
    panel.title.icon = servingIcon;
    app.shell.add(panel, 'left', { rank: 850 });
    if (restorer) {
      restorer.add(panel, 'jupyter-serving-panel');
    }

    commands.addCommand(CommandIDs.open, {
      label: 'Show Model Serving',
      caption: 'Show the Model Serving sidebar',
      execute: () => app.shell.activateById(panel.id)
    });
    commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh Model Serving Endpoints',
      execute: () => panel.refresh(true)
    });
    commands.addCommand(CommandIDs.openStatus, {
      label: args => `Open Status of ${(args['name'] as string) || 'Endpoint'}`,
      caption: 'Insert and run `%serve status NAME --watch` in the active notebook',
      execute: async args => {
        const name = args['name'] as string;
        await insertCell(app, statusCell(name), true);
      }
    });
    commands.addCommand(CommandIDs.openTraffic, {
      label: args => `Edit Traffic of ${(args['name'] as string) || 'Endpoint'}`,
      caption: 'Insert and run `%serve traffic NAME` in the active notebook',
      execute: async args => {
        await insertCell(app, trafficCell(args['name'] as string), true);
      }
    });
    commands.addCommand(CommandIDs.openLogs, {
      label: args => `Show Logs of ${(args['name'] as string) || 'Endpoint'}`,
      caption: 'Insert and run `%serve logs NAME` in the active notebook',
      execute: async args => {
        await insertCell(app, logsCell(args['name'] as string), true);
      }
    });
    commands.addCommand(CommandIDs.insertQuery, {
      label: args => `Insert Query Cell for ${(args['name'] as string) || 'Endpoint'}`,
      caption: 'Insert a %%query cell with a request template built from the endpoint schema',
      execute: async args => {
        const name = args['name'] as string;
        const template = await queryTemplate(name);
        await insertCell(app, template.cell, false);
      }
    });
    if (palette) {
      palette.addItem({ command: CommandIDs.open, category: 'Model Serving' });
      palette.addItem({ command: CommandIDs.refresh, category: 'Model Serving' });
    }
  }
};

export default plugin;
