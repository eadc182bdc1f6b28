/**
 * The "Model Serving" sidebar: the connected backend's endpoints, their state, served entities and
 * traffic, with stop / start / delete, "Open status" and "Insert query cell".
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import {
  deleteIcon,
  LabIcon,
  refreshIcon,
  runIcon,
  stopIcon
} from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import {
  deleteEndpoint,
  IEndpoint,
  IEndpointList,
  IEntity,
  listEndpoints,
  requestAPI,
  startEndpoint,
  stopEndpoint,
  ServingRequestError
} from './request';

/** Poll intervals (ms): idle, and while an endpoint is changing state. */
const IDLE_INTERVAL = 5000;
const BUSY_INTERVAL = 1500;
const MAX_BACKOFF = 60000;

const TRANSITIONAL = new Set(['updating']);

export interface IServingPanelActions {
  openStatus(name: string): Promise<void>;
  insertQueryCell(name: string): Promise<void>;
}

type Busy = 'stopping' | 'starting' | 'deleting' | 'inserting' | 'opening';

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') {
      node.className = value;
    } else {
      node.setAttribute(key, value);
    }
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child);
    }
  }
  return node;
}

function iconNode(icon: LabIcon): HTMLElement {
  return icon.element({ tag: 'span', className: 'jp-ServingPanel-icon', elementSize: 'small' });
}

export function relativeTime(ms: number | null, now = Date.now()): string {
  if (!ms) {
    return '';
  }
  const seconds = Math.max(0, Math.round((now - ms) / 1000));
  if (seconds < 45) {
    return 'just now';
  }
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) {
    return `${minutes} min ago`;
  }
  const hours = Math.round(minutes / 60);
  if (hours < 24) {
    return `${hours} h ago`;
  }
  const days = Math.round(hours / 24);
  return days < 30 ? `${days} d ago` : new Date(ms).toLocaleDateString();
}

function workloadLabel(entity: IEntity): string {
  const parts: string[] = [];
  if (entity.workload_size) {
    parts.push(entity.workload_size);
  }
  parts.push(entity.workload_type || 'CPU');
  if (entity.scale_to_zero) {
    parts.push('→0');
  }
  return parts.join(' · ');
}

function canManage(ep: IEndpoint): boolean {
  return !ep.permission_level || ep.permission_level === 'CAN_MANAGE';
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
    const retry = h(
      'button',
      { class: 'jp-ServingPanel-retry', 'data-action': 'retry' },
      'Retry'
    );
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
      const busy = data.endpoints.some(ep => TRANSITIONAL.has(ep.badge)) || this._busy.size > 0;
      this._setInterval(busy ? BUSY_INTERVAL : IDLE_INTERVAL);
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
    this._loadingNode.hidden = this._data !== null || this._error !== null;
    if (this._error) {
      this._errorText.textContent = this._error.message;
      this._errorText.title = this._error.message;
      this._errorNode.dataset.kind =
        this._error instanceof ServingRequestError ? this._error.kind : 'Error';
      this._errorNode.hidden = false;
    } else {
      this._errorNode.hidden = true;
    }
    const data = this._data;
    if (!data) {
      this._backendNode.textContent = this._configured.replace(/^the /, '');
      this._backendNode.title = this._configured;
      this._emptyNode.hidden = true;
      return;
    }
    this._backendNode.textContent = data.backend.replace(/^the /, '');
    this._backendNode.title = `Endpoints of ${data.backend}`;
    this._emptyNode.hidden = data.endpoints.length > 0;

    const now = Date.now();
    const seen = new Set<string>();
    let previous: Element | null = null;
    for (const ep of data.endpoints) {
      seen.add(ep.name);
      const key = JSON.stringify([ep, this._busy.get(ep.name), this._cardErrors.get(ep.name)]);
      let card = this._cards.get(ep.name);
      if (!card || card.key !== key) {
        const node = this._card(ep);
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
      const expected: Element | null = previous ? previous.nextElementSibling : this._listNode.firstElementChild;
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

  private _card(ep: IEndpoint): HTMLElement {
    const busy = this._busy.get(ep.name);
    const badgeText = busy ? `${busy}…` : ep.badge;
    const badge = h(
      'span',
      {
        class: 'jp-ServingBadge',
        'data-badge': busy ? 'updating' : ep.badge,
        title: ep.state
      },
      badgeText
    );
    const head = h(
      'div',
      { class: 'jp-ServingEndpoint-head' },
      h('span', { class: 'jp-ServingEndpoint-name', title: ep.name }, ep.name),
      badge
    );

    const meta = h('div', { class: 'jp-ServingEndpoint-meta' });
    if (ep.config_version !== null && ep.config_version !== undefined) {
      meta.append(h('span', { class: 'jp-ServingEndpoint-config' }, `config v${ep.config_version}`));
    }
    if (ep.updated) {
      meta.append(
        h('span', {
          class: 'jp-ServingEndpoint-updated',
          title: `Last updated ${new Date(ep.updated).toLocaleString()}`
        })
      );
    }
    if (ep.creator) {
      meta.append(h('span', { class: 'jp-ServingEndpoint-creator', title: 'Creator' }, ep.creator));
    }

    const entities = this._entities(ep.entities, 'jp-ServingEndpoint-entities');

    const card = h(
      'li',
      { class: 'jp-ServingEndpoint', 'data-endpoint': ep.name, 'data-badge': ep.badge },
      head,
      meta,
      entities
    );
    if (ep.pending) {
      card.append(
        h(
          'div',
          { class: 'jp-ServingEndpoint-pending' },
          `Deploying config v${ep.pending.config_version ?? '?'}: ` +
            ep.pending.entities.map(e => e.model).join(', ')
        )
      );
    }
    if (ep.message) {
      card.append(h('div', { class: 'jp-ServingEndpoint-message', title: ep.message }, ep.message));
    }
    const cardError = this._cardErrors.get(ep.name);
    if (cardError) {
      card.append(
        h('div', { class: 'jp-ServingEndpoint-error', role: 'alert', title: cardError }, cardError)
      );
    }
    card.append(this._buttons(ep, !!busy));
    return card;
  }

  private _entities(entities: IEntity[], className: string): HTMLElement {
    const table = h('div', { class: className, role: 'table' });
    for (const e of entities) {
      const traffic = e.traffic === null || e.traffic === undefined ? '' : `${e.traffic}%`;
      const bar = h('span', { class: 'jp-ServingEntity-bar' });
      bar.style.width = `${Math.max(0, Math.min(100, e.traffic ?? 0))}%`;
      const full = e.entity_name || e.model || e.name;
      const leaf = full.split('.').pop() || full;
      const version = e.entity_version ? `v${e.entity_version}` : '';
      table.append(
        h(
          'div',
          { class: 'jp-ServingEntity', role: 'row', 'data-entity': e.name },
          h(
            'span',
            {
              class: 'jp-ServingEntity-model',
              role: 'cell',
              title: `${e.model || full} (served entity ${e.name})`
            },
            h('span', { class: 'jp-ServingEntity-name' }, leaf),
            version ? h('span', { class: 'jp-ServingEntity-version' }, version) : null
          ),
          h('span', { class: 'jp-ServingEntity-workload', role: 'cell', title: e.workload }, workloadLabel(e)),
          h('span', { class: 'jp-ServingEntity-traffic', role: 'cell', title: 'Traffic' }, traffic),
          h('span', { class: 'jp-ServingEntity-track' }, bar)
        )
      );
    }
    return table;
  }

  private _button(
    action: string,
    label: string,
    title: string,
    icon: LabIcon | null,
    disabled: boolean,
    onClick: () => void
  ): HTMLButtonElement {
    const button = h(
      'button',
      {
        class: 'jp-ServingEndpoint-button',
        'data-action': action,
        title,
        'aria-label': title
      },
      icon ? iconNode(icon) : null,
      label ? h('span', {}, label) : null
    );
    button.disabled = disabled;
    button.addEventListener('click', onClick);
    return button;
  }

  private _buttons(ep: IEndpoint, busy: boolean): HTMLElement {
    const manage = canManage(ep);
    const stopped = ep.badge === 'stopped';
    const updating = ep.badge === 'updating';
    const noRight = manage ? '' : ' (needs CAN_MANAGE)';
    const actions = h('div', { class: 'jp-ServingEndpoint-actions' });
    if (stopped) {
      actions.append(
        this._button('start', 'Start', `Start ${ep.name}${noRight}`, runIcon, busy || !manage, () =>
          void this._act(ep.name, 'starting', () => startEndpoint(ep.name))
        )
      );
    } else {
      actions.append(
        this._button('stop', 'Stop', `Stop ${ep.name}${noRight}`, stopIcon, busy || updating || !manage, () =>
          void this._act(ep.name, 'stopping', () => stopEndpoint(ep.name))
        )
      );
    }
    actions.append(
      this._button(
        'status',
        'Status',
        `Open status: run %serve status ${ep.name} --watch in the notebook`,
        null,
        busy,
        () => void this._withBusy(ep.name, 'opening', () => this._actions.openStatus(ep.name))
      ),
      this._button(
        'query',
        'Query',
        `Insert query cell: a %%query ${ep.name} cell with a request template`,
        null,
        busy || stopped,
        () =>
          void this._withBusy(ep.name, 'inserting', () => this._actions.insertQueryCell(ep.name))
      ),
      h('span', { class: 'jp-ServingEndpoint-spacer' }),
      this._button('delete', '', `Delete ${ep.name}${noRight}`, deleteIcon, busy || !manage, () =>
        void this._delete(ep.name)
      )
    );
    return actions;
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
}
