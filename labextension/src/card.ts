/**
 * One endpoint's card in the sidebar: name and badge, config version, last update and creator,
 * served entities with their traffic, pending update, message, error and the action buttons.
 * What the card says comes from the pure helpers in `./model`.
 */
import { copyIcon, deleteIcon, LabIcon, runIcon, stopIcon } from '@jupyterlab/ui-components';

import { h, iconNode } from './dom';
import {
  actionStates,
  badgeView,
  Busy,
  configLabel,
  entityView,
  IButtonState,
  IEndpoint,
  IEntity,
  pendingLabel
} from './model';

/** What the card's buttons do; the panel tracks the busy state and refreshes. */
export interface ICardActions {
  start(name: string): void;
  stop(name: string): void;
  openStatus(name: string): void;
  openTraffic(name: string): void;
  openLogs(name: string): void;
  insertQuery(name: string): void;
  copyCurl(name: string): void;
  copyPython(name: string): void;
  delete(name: string): void;
}

export function renderCard(
  ep: IEndpoint,
  busy: Busy | undefined,
  error: string | undefined,
  actions: ICardActions
): HTMLElement {
  const view = badgeView(ep, busy);
  const badge = h(
    'span',
    { class: 'jp-ServingBadge', 'data-badge': view.badge, title: view.title },
    view.text
  );
  const head = h(
    'div',
    { class: 'jp-ServingEndpoint-head' },
    h('span', { class: 'jp-ServingEndpoint-name', title: ep.name }, ep.name),
    badge
  );

  const meta = h('div', { class: 'jp-ServingEndpoint-meta' });
  const config = configLabel(ep);
  if (config !== null) {
    meta.append(h('span', { class: 'jp-ServingEndpoint-config' }, config));
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

  const card = h(
    'li',
    { class: 'jp-ServingEndpoint', 'data-endpoint': ep.name, 'data-badge': ep.badge },
    head,
    meta,
    renderEntities(ep.entities, 'jp-ServingEndpoint-entities')
  );
  card.append(renderUrl(ep, actions));
  const pending = pendingLabel(ep);
  if (pending !== null) {
    card.append(h('div', { class: 'jp-ServingEndpoint-pending' }, pending));
  }
  if (ep.message) {
    card.append(h('div', { class: 'jp-ServingEndpoint-message', title: ep.message }, ep.message));
  }
  if (error) {
    card.append(
      h('div', { class: 'jp-ServingEndpoint-error', role: 'alert', title: error }, error)
    );
  }
  card.append(renderButtons(ep, !!busy, actions));
  return card;
}

export function renderEntities(entities: IEntity[], className: string): HTMLElement {
  const table = h('div', { class: className, role: 'table' });
  for (const e of entities) {
    const view = entityView(e);
    const bar = h('span', { class: 'jp-ServingEntity-bar' });
    bar.style.width = view.barWidth;
    table.append(
      h(
        'div',
        { class: 'jp-ServingEntity', role: 'row', 'data-entity': e.name },
        h(
          'span',
          { class: 'jp-ServingEntity-model', role: 'cell', title: view.title },
          h('span', { class: 'jp-ServingEntity-name' }, view.name),
          view.detail ? h('span', { class: 'jp-ServingEntity-version' }, view.detail) : null
        ),
        h(
          'span',
          { class: 'jp-ServingEntity-workload', role: 'cell', title: e.workload },
          view.workload
        ),
        h(
          'span',
          { class: 'jp-ServingEntity-traffic', role: 'cell', title: 'Traffic' },
          view.traffic
        ),
        h('span', { class: 'jp-ServingEntity-track' }, bar)
      )
    );
  }
  return table;
}

function button(
  action: string,
  label: string,
  state: IButtonState,
  icon: LabIcon | null,
  onClick: () => void
): HTMLButtonElement {
  const node = h(
    'button',
    {
      class: 'jp-ServingEndpoint-button',
      'data-action': action,
      title: state.title,
      'aria-label': state.title
    },
    icon ? iconNode(icon) : null,
    label ? h('span', {}, label) : null
  );
  node.disabled = state.disabled;
  node.addEventListener('click', onClick);
  return node;
}

function renderUrl(ep: IEndpoint, actions: ICardActions): HTMLElement {
  const states = actionStates(ep, false);
  const name = ep.name;
  return h(
    'div',
    { class: 'jp-ServingEndpoint-urlRow' },
    h(
      'span',
      { class: 'jp-ServingEndpoint-url', title: ep.url || 'URL not known' },
      ep.url || 'URL not known'
    ),
    button(
      'copy-curl',
      'curl',
      { ...states.copy, title: 'Copy as curl ($DATABRICKS_TOKEN)' },
      copyIcon,
      () => actions.copyCurl(name)
    ),
    button(
      'copy-python',
      'Python',
      { ...states.copy, title: 'Copy as Python (databricks-sdk)' },
      copyIcon,
      () => actions.copyPython(name)
    )
  );
}

function renderButtons(ep: IEndpoint, busy: boolean, actions: ICardActions): HTMLElement {
  const states = actionStates(ep, busy);
  const name = ep.name;
  const toggle =
    states.toggle.action === 'start'
      ? button('start', 'Start', states.toggle, runIcon, () => actions.start(name))
      : button('stop', 'Stop', states.toggle, stopIcon, () => actions.stop(name));
  return h(
    'div',
    { class: 'jp-ServingEndpoint-actions' },
    toggle,
    button('status', 'Status', states.status, null, () => actions.openStatus(name)),
    button('traffic', 'Traffic', states.traffic, null, () => actions.openTraffic(name)),
    button('logs', 'Logs', states.logs, null, () => actions.openLogs(name)),
    button('query', 'Query', states.query, null, () => actions.insertQuery(name)),
    h('span', { class: 'jp-ServingEndpoint-spacer' }),
    button('delete', '', states.delete, deleteIcon, () => actions.delete(name))
  );
}
