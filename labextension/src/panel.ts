/**
 * The "Model Serving" sidebar: the connected backend's endpoints, their state, served entities and
 * traffic, with stop / start / delete, "Open status" and "Insert query cell".
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { refreshIcon } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { ICardActions, renderCard } from './card';
import { h, iconNode } from './dom';
import {
  backendLabel,
  Busy,
  cardKey,
  curlCommand,
  errorKind,
  hostOf,
  IDLE_INTERVAL,
  IEndpointList,
  MAX_BACKOFF,
  panelView,
  pollInterval,
  pythonSnippet,
  relativeTime
} from './model';
import {
  deleteEndpoint,
  listEndpoints,
  queryTemplate,
  requestAPI,
  startEndpoint,
  stopEndpoint
} from './request';

export { relativeTime } from './model';

export interface IServingPanelActions {
  openStatus(name: string): Promise<void>;
  openTraffic(name: string): Promise<void>;
  openLogs(name: string): Promise<void>;
  insertQueryCell(name: string): Promise<void>;
  /** Put `text` on the clipboard. */
  copy(text: string): Promise<void> | void;
}

export class ServingPanel extends Widget {
  constructor(private readonly _actions: IServingPanelActions) {
    super();
    this.id = 'jupyter-serving-panel';
    this.addClass('jp-ServingPanel');
    this.title.caption = 'Model Serving';

    this._backendNode = h('div', { class: 'jp-ServingPanel-backend' });
    const refresh = h(
      'button',
      {
        class: 'jp-ServingPanel-iconButton',
        'data-action': 'refresh',
        title: 'Refresh',
        'aria-label': 'Refresh the endpoints'
      },
      iconNode(refreshIcon)
    );
    refresh.addEventListener('click', () => void this.refresh());
    const header = h(
      'div',
      { class: 'jp-ServingPanel-header' },
      h('h2', { class: 'jp-ServingPanel-title' }, 'Model Serving'),
      refresh
    );
    this._errorText = h('span', { class: 'jp-ServingPanel-errorText' });
    const retry = h('button', { class: 'jp-ServingPanel-retry', 'data-action': 'retry' }, 'Retry');
    retry.addEventListener('click', () => void this.refresh(true));
    this._errorNode = h(
      'div',
      { class: 'jp-ServingPanel-error', role: 'alert' },
      this._errorText,
      h('div', { class: 'jp-ServingPanel-errorActions' }, retry)
    );
    this._errorNode.hidden = true;
    this._listNode = h('ul', { class: 'jp-ServingPanel-list', 'aria-label': 'Serving endpoints' });
    this._emptyNode = h(
      'div',
      { class: 'jp-ServingPanel-empty' },
      'No serving endpoints yet. Create one from a notebook:',
      h('code', {}, '%serve create NAME --model MODEL')
    );
    this._emptyNode.hidden = true;
    this._loadingNode = h('div', { class: 'jp-ServingPanel-loading' }, 'Connecting…');
    this.node.append(
      header,
      this._backendNode,
      this._errorNode,
      this._loadingNode,
      this._listNode,
      this._emptyNode
    );

    void requestAPI<{ backend: string }>('connection')
      .then(({ backend }) => {
        this._configured = backend;
        this._render();
      })
      .catch(() => undefined);

    this._poll = new Poll<IEndpointList | null>({
      factory: () => this._fetch(),
      frequency: { interval: IDLE_INTERVAL, backoff: true, max: MAX_BACKOFF },
      // Pause while the sidebar is collapsed, and while the browser tab is hidden.
      standby: () => (this.isVisible ? 'when-hidden' : true),
      name: 'jupyter-serving:endpoints'
    });
  }

  /** The poll (for tests and commands). */
  get poll(): Poll<IEndpointList | null> {
    return this._poll;
  }

  /** Refresh now; `reconnect` asks the server to resolve the connection again (Retry). */
  async refresh(reconnect = false): Promise<void> {
    this._reconnect = this._reconnect || reconnect;
    await this._poll.refresh();
    await this._poll.tick.catch(() => undefined);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this._poll.refresh();
  }

  private async _fetch(): Promise<IEndpointList | null> {
    const reconnect = this._reconnect;
    this._reconnect = false;
    try {
      const data = await listEndpoints(reconnect);
      this._data = data;
      this._error = null;
      this._render();
      this._setInterval(pollInterval(data.endpoints, this._busy.size));
      return data;
    } catch (error) {
      this._error = error instanceof Error ? error : new Error(String(error));
      this._render();
      // Rejecting makes the poll back off (up to MAX_BACKOFF) until the backend answers again.
      throw error;
    }
  }

  private _setInterval(interval: number): void {
    if (this._poll.frequency.interval !== interval) {
      this._poll.frequency = { ...this._poll.frequency, interval };
    }
  }

  private _render(): void {
    const view = panelView(this._data !== null, this._data?.endpoints.length ?? 0, !!this._error);
    this._loadingNode.hidden = !view.loading;
    this._listNode.hidden = !view.list;
    if (this._error) {
      this._errorText.textContent = this._error.message;
      this._errorText.title = this._error.message;
      this._errorNode.dataset.kind = errorKind(this._error);
      this._errorNode.hidden = false;
    } else {
      this._errorNode.hidden = true;
    }
    const data = this._data;
    if (!data) {
      this._backendNode.textContent = backendLabel(this._configured);
      this._backendNode.title = this._configured;
      this._emptyNode.hidden = true;
      return;
    }
    this._backendNode.textContent = backendLabel(data.backend);
    this._backendNode.title = `Endpoints of ${data.backend}`;
    this._emptyNode.hidden = !view.empty;

    const now = Date.now();
    const seen = new Set<string>();
    let previous: Element | null = null;
    for (const ep of data.endpoints) {
      seen.add(ep.name);
      const busy = this._busy.get(ep.name);
      const cardError = this._cardErrors.get(ep.name);
      const key = cardKey(ep, busy, cardError);
      let card = this._cards.get(ep.name);
      if (!card || card.key !== key) {
        const node = renderCard(ep, busy, cardError, this._cardActions);
        if (card) {
          card.node.replaceWith(node);
        }
        card = { key, node };
        this._cards.set(ep.name, card);
      }
      const time = card.node.querySelector('.jp-ServingEndpoint-updated');
      if (time) {
        time.textContent = relativeTime(ep.updated, now);
      }
      const expected: Element | null = previous
        ? previous.nextElementSibling
        : this._listNode.firstElementChild;
      if (expected !== card.node) {
        if (previous) {
          previous.after(card.node);
        } else {
          this._listNode.prepend(card.node);
        }
      }
      previous = card.node;
    }
    for (const [name, card] of this._cards) {
      if (!seen.has(name)) {
        card.node.remove();
        this._cards.delete(name);
      }
    }
  }

  private async _act(name: string, busy: Busy, fn: () => Promise<unknown>): Promise<void> {
    await this._withBusy(name, busy, async () => {
      await fn();
    });
    await this.refresh();
  }

  private async _withBusy(name: string, busy: Busy, fn: () => Promise<void>): Promise<void> {
    this._busy.set(name, busy);
    this._cardErrors.delete(name);
    this._render();
    try {
      await fn();
    } catch (error) {
      this._cardErrors.set(name, (error as Error).message);
    } finally {
      this._busy.delete(name);
      this._render();
    }
  }

  /** Copy a request to endpoint `name` (its body: the schema's query template). */
  private async _copy(name: string, kind: 'curl' | 'python'): Promise<void> {
    const ep = this._data?.endpoints.find(e => e.name === name);
    if (!ep?.url) {
      return;
    }
    const url = ep.url;
    await this._withBusy(name, 'copying', async () => {
      const template = await queryTemplate(name)
        .then(t => t.template)
        .catch(() => ({ inputs: [] }));
      const text =
        kind === 'curl' ? curlCommand(url, template) : pythonSnippet(name, template, hostOf(url));
      this._copied = text;
      await this._actions.copy(text);
    });
  }

  /** The last text a Copy button put on the clipboard (for tests). */
  get copied(): string {
    return this._copied;
  }

  private async _delete(name: string): Promise<void> {
    const result = await showDialog({
      title: 'Delete serving endpoint',
      body: `Delete the endpoint "${name}"? It stops serving at once, and this cannot be undone.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!result.button.accept) {
      return;
    }
    await this._act(name, 'deleting', () => deleteEndpoint(name));
  }

  private readonly _cardActions: ICardActions = {
    start: name => void this._act(name, 'starting', () => startEndpoint(name)),
    stop: name => void this._act(name, 'stopping', () => stopEndpoint(name)),
    openStatus: name => void this._withBusy(name, 'opening', () => this._actions.openStatus(name)),
    openTraffic: name =>
      void this._withBusy(name, 'opening', () => this._actions.openTraffic(name)),
    openLogs: name => void this._withBusy(name, 'opening', () => this._actions.openLogs(name)),
    insertQuery: name =>
      void this._withBusy(name, 'inserting', () => this._actions.insertQueryCell(name)),
    copyCurl: name => void this._copy(name, 'curl'),
    copyPython: name => void this._copy(name, 'python'),
    delete: name => void this._delete(name)
  };
  private readonly _backendNode: HTMLElement;
  private readonly _errorNode: HTMLElement;
  private readonly _errorText: HTMLElement;
  private readonly _listNode: HTMLElement;
  private readonly _emptyNode: HTMLElement;
  private readonly _loadingNode: HTMLElement;
  private readonly _poll: Poll<IEndpointList | null>;
  private readonly _cards = new Map<string, { key: string; node: HTMLElement }>();
  private readonly _busy = new Map<string, Busy>();
  private readonly _cardErrors = new Map<string, string>();
  private _data: IEndpointList | null = null;
  private _error: Error | null = null;
  private _reconnect = false;
  private _configured = '';
  private _copied = '';
}
