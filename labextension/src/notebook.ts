/**
 * Inserting (and running) magic cells in the active notebook.
 *
 * Only the small part of NotebookPanel used here is typed below, so that the extension does not
 * depend on @jupyterlab/notebook at build time (it pulls ~250 MB of node modules). The notebook is
 * driven through its shared model and the stock `notebook:run-cell` command.
 */
import type { ISharedNotebook } from '@jupyter/ydoc';
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ISessionContext } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

export interface INotebookPanelLike extends Widget {
  readonly content: Widget & {
    readonly model: { readonly sharedModel: ISharedNotebook } | null;
    activeCellIndex: number;
    deselectAll(): void;
    scrollToItem?(index: number): Promise<void>;
  };
  readonly sessionContext: ISessionContext;
  readonly context: { readonly ready: Promise<void> };
}

export const LOAD_MAGICS = '%load_ext jupyter_serving';
const LOADS_MAGICS = /^\s*%(re)?load_ext\s+jupyter_serving\b/m;

export function isNotebookPanel(widget: Widget | null | undefined): widget is INotebookPanelLike {
  return (
    !!widget &&
    widget.hasClass('jp-NotebookPanel') &&
    'sessionContext' in widget &&
    'content' in widget
  );
}

/**
 * The notebook the user works in: the current main-area widget if it is a notebook, else the most
 * recently listed open notebook, else a new one (with the default Python kernel).
 */
export async function activeNotebook(app: JupyterFrontEnd): Promise<INotebookPanelLike> {
  let panel: INotebookPanelLike | null = null;
  if (isNotebookPanel(app.shell.currentWidget)) {
    panel = app.shell.currentWidget;
  } else {
    for (const widget of app.shell.widgets('main')) {
      if (isNotebookPanel(widget)) {
        panel = widget;
      }
    }
  }
  if (!panel) {
    const created = await app.commands.execute('notebook:create-new', {
      kernelName: 'python3'
    });
    if (!isNotebookPanel(created)) {
      throw new Error('Could not open a notebook');
    }
    panel = created;
  }
  app.shell.activateById(panel.id);
  await panel.context.ready;
  return panel;
}

function cellSource(cell: { getSource(): unknown }): string {
  const source = cell.getSource();
  return typeof source === 'string' ? source : '';
}

/**
 * Make sure the notebook loads the magics. A notebook without a `%load_ext jupyter_serving` cell
 * gets one at the top (kept when the notebook is saved and re-run), which is run at once: its output
 * names the backend the kernel uses. Otherwise the extension is loaded in the running kernel
 * silently (a no-op when loaded already; it covers a restarted kernel).
 */
export async function ensureMagics(app: JupyterFrontEnd, panel: INotebookPanelLike): Promise<void> {
  const notebook = panel.content;
  let added = false;
  if (notebook.model) {
    const shared = notebook.model.sharedModel;
    const cells = shared.cells;
    if (!cells.some(cell => cell.cell_type === 'code' && LOADS_MAGICS.test(cellSource(cell)))) {
      const first = cells[0];
      if (first && first.cell_type === 'code' && cellSource(first).trim() === '') {
        first.setSource(LOAD_MAGICS);
      } else {
        shared.insertCell(0, { cell_type: 'code', source: LOAD_MAGICS, metadata: {} });
        notebook.activeCellIndex = notebook.activeCellIndex + 1;
      }
      added = true;
    }
  }
  const session = panel.sessionContext;
  await session.ready;
  if (added) {
    const active = notebook.activeCellIndex;
    notebook.deselectAll();
    notebook.activeCellIndex = 0;
    await app.commands.execute('notebook:run-cell');
    notebook.activeCellIndex = active;
    return;
  }
  const kernel = session.session?.kernel;
  if (kernel) {
    await kernel.requestExecute({ code: LOAD_MAGICS, silent: true, store_history: false }).done;
  }
}

/**
 * Insert a code cell below the active cell (or fill the active cell when it is an empty code
 * cell), select it, and run it when `run` is true.
 */
export async function insertCell(
  app: JupyterFrontEnd,
  source: string,
  run: boolean
): Promise<INotebookPanelLike> {
  const panel = await activeNotebook(app);
  await ensureMagics(app, panel);
  const notebook = panel.content;
  const shared = notebook.model!.sharedModel;
  const active = Math.max(0, Math.min(notebook.activeCellIndex, shared.cells.length - 1));
  const current = shared.cells[active];
  let index: number;
  if (
    current &&
    current.cell_type === 'code' &&
    cellSource(current).trim() === '' &&
    shared.cells.length > 0
  ) {
    index = active;
    current.setSource(source);
  } else {
    index = Math.min(active + 1, shared.cells.length);
    shared.insertCell(index, { cell_type: 'code', source, metadata: {} });
  }
  notebook.deselectAll();
  notebook.activeCellIndex = index;
  if (notebook.scrollToItem) {
    await notebook.scrollToItem(index).catch(() => undefined);
  }
  if (run) {
    await app.commands.execute('notebook:run-cell');
  }
  return panel;
}
