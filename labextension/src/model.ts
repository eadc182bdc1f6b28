/**
 * The pure logic of the Model Serving sidebar: the data the server extension sends, and how the
 * panel turns it into text, states and requests.
 *
 * No DOM and no JupyterLab imports here, so that it runs (and is unit-tested) under plain Node.
 */

export type Badge = 'ready' | 'updating' | 'update failed' | 'stopped' | 'not ready';

export interface IEntity {
  name: string;
  entity_name: string | null;
  entity_version: string | null;
  model: string;
  workload: string;
  workload_type: string;
  workload_size: string | null;
  scale_to_zero: boolean;
  traffic: number | null;
  deployment: string | null;
  message: string;
}

export interface IEndpoint {
  name: string;
  badge: Badge;
  state: string;
  ready: string | null;
  config_update: string | null;
  suspend: string | null;
  config_version: number | string | null;
  updated: number | null;
  created: number | null;
  creator: string | null;
  permission_level: string | null;
  entities: IEntity[];
  pending: { config_version: number | string | null; entities: IEntity[] } | null;
  message: string;
  /** The invocation URL (`{host}/serving-endpoints/NAME/invocations`), or null when unknown. */
  url?: string | null;
}

export interface IEndpointList {
  backend: string;
  is_local: boolean;
  endpoints: IEndpoint[];
}

export interface IQueryTemplate {
  name: string;
  template: unknown;
  cell: string;
}

/**
 * An error the panel shows in one line. `kind` is the Python error class
 * (ConnectionFailedError, AuthenticationError, AccessDeniedError, ...), or
 * NetworkError when the Jupyter server itself cannot be reached.
 */
export class ServingRequestError extends Error {
  constructor(
    message: string,
    readonly kind: string,
    readonly status: number
  ) {
    super(message);
    this.name = 'ServingRequestError';
  }
}

// ---------------------------------------------------------------------------------------------
// Requests

/** Where the server extension's handlers live, below the Jupyter server's base URL. */
export const NAMESPACE = 'jupyter-serving/api';

export type EndpointAction = 'stop' | 'start' | 'query-template';

/** The API path of one endpoint (`endpoints/NAME`), or of an action on it (`endpoints/NAME/stop`). */
export function endpointPath(name: string, action?: EndpointAction): string {
  const base = `endpoints/${encodeURIComponent(name)}`;
  return action ? `${base}/${action}` : base;
}

/** The query parameters of the endpoint list: `reconnect=1` asks the server to connect again. */
export function listParams(reconnect: boolean): Record<string, string> {
  return reconnect ? { reconnect: '1' } : {};
}

/** `url?a=1&b=2`, or `url` alone when there are no parameters. */
export function withQuery(url: string, params: Record<string, string>): string {
  const query = new URLSearchParams(params).toString();
  return query ? `${url}?${query}` : url;
}

/** A response body as JSON; null when it is empty or not JSON (an HTML error page, say). */
export function parseBody(text: string): unknown {
  if (!text) {
    return null;
  }
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

interface IErrorBody {
  error?: { message?: unknown; kind?: string };
  message?: string;
  reason?: string;
}

export const NOT_ENABLED_MESSAGE =
  'The jupyter-serving server extension is not enabled: run ' +
  '`jupyter server extension enable jupyter_serving` and restart JupyterLab';

/**
 * The error for a response that is not ok: the server extension's own `{"error": {message, kind}}`
 * when it sent one; a 404 without a body means the extension is not loaded at all; otherwise the
 * HTTP status and reason.
 */
export function responseError(
  status: number,
  statusText: string,
  data: unknown
): ServingRequestError {
  const body = data as IErrorBody | null;
  const err = body?.error;
  if (err && typeof err.message === 'string') {
    return new ServingRequestError(err.message, err.kind || 'Error', status);
  }
  if (status === 404 && !data) {
    return new ServingRequestError(NOT_ENABLED_MESSAGE, 'NotEnabled', 404);
  }
  const reason = (body && (body.message || body.reason)) || statusText;
  return new ServingRequestError(
    `The Jupyter server answered ${status}${reason ? ' (' + reason + ')' : ''}`,
    'HTTPError',
    status
  );
}

/** The error kind shown on the panel's error box (`data-kind`). */
export function errorKind(error: Error): string {
  return error instanceof ServingRequestError ? error.kind : 'Error';
}

// ---------------------------------------------------------------------------------------------
// Polling

/** Poll intervals (ms): idle, and while an endpoint is changing state. */
export const IDLE_INTERVAL = 5000;
export const BUSY_INTERVAL = 1500;
export const MAX_BACKOFF = 60000;

const TRANSITIONAL = new Set<Badge>(['updating']);

/** Poll faster while any endpoint is changing state or the user waits on an action. */
export function pollInterval(endpoints: readonly IEndpoint[], actionsInFlight: number): number {
  const busy = actionsInFlight > 0 || endpoints.some(ep => TRANSITIONAL.has(ep.badge));
  return busy ? BUSY_INTERVAL : IDLE_INTERVAL;
}

// ---------------------------------------------------------------------------------------------
// Formatting

/** What the user is waiting on for one endpoint, shown in place of its badge. */
export type Busy = 'stopping' | 'starting' | 'deleting' | 'inserting' | 'opening' | 'copying';

/** "just now", "5 min ago", "3 h ago", "2 d ago", then the date; '' without a time. */
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

/** The backend's description without a leading "the " ("local backend at http://..."). */
export function backendLabel(backend: string): string {
  return backend.replace(/^the /, '');
}

/** The badge of an endpoint: its state, or what the user waits on ("stopping…"). */
export function badgeView(
  ep: IEndpoint,
  busy: Busy | undefined
): { text: string; badge: Badge; title: string } {
  return busy
    ? { text: `${busy}…`, badge: 'updating', title: ep.state }
    : { text: ep.state || ep.badge, badge: ep.badge, title: ep.state };
}

/** "config v3", or null when the endpoint has no config version. */
export function configLabel(ep: IEndpoint): string | null {
  return ep.config_version === null || ep.config_version === undefined
    ? null
    : `config v${ep.config_version}`;
}

/** "Deploying config v4: model-a, model-b", or null when no update is pending. */
export function pendingLabel(ep: IEndpoint): string | null {
  if (!ep.pending) {
    return null;
  }
  return (
    `Deploying config v${ep.pending.config_version ?? '?'}: ` +
    ep.pending.entities.map(e => e.model).join(', ')
  );
}

/** "Small · CPU · →0": the workload size, type (CPU by default) and scale-to-zero. */
export function workloadLabel(entity: IEntity): string {
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

export interface IEntityView {
  /** The served entity's name ("iris-1"): what the traffic split and the logs call it. */
  name: string;
  /** What it serves, secondary: "iris v3" (the model's last dotted part and its version). */
  detail: string;
  /** The last dotted part of the model name ("iris" for "main.default.iris"). */
  leaf: string;
  /** "v3", or '' without a version. */
  version: string;
  /** The tooltip: the full model name and the served entity's name. */
  title: string;
  workload: string;
  /** "80%", or '' when the traffic is unknown. */
  traffic: string;
  /** The traffic bar's CSS width, clamped to 0–100%. */
  barWidth: string;
}

export function entityView(e: IEntity): IEntityView {
  const full = e.entity_name || e.model || e.name;
  const leaf = full.split('.').pop() || full;
  const version = e.entity_version ? `v${e.entity_version}` : '';
  const detail = [leaf, version].filter(Boolean).join(' ');
  return {
    name: e.name || leaf,
    detail: detail === e.name ? '' : detail,
    leaf,
    version,
    title: `${e.model || full} (served entity ${e.name})`,
    workload: workloadLabel(e),
    traffic: e.traffic === null || e.traffic === undefined ? '' : `${e.traffic}%`,
    barWidth: `${Math.max(0, Math.min(100, e.traffic ?? 0))}%`
  };
}

// ---------------------------------------------------------------------------------------------
// Actions

/** Whether the user may stop, start or delete the endpoint (no permission level: a local one). */
export function canManage(ep: IEndpoint): boolean {
  return !ep.permission_level || ep.permission_level === 'CAN_MANAGE';
}

export interface IButtonState {
  title: string;
  disabled: boolean;
}

export interface IActionStates {
  /** Start for a stopped endpoint, stop otherwise. */
  toggle: IButtonState & { action: 'start' | 'stop' };
  status: IButtonState;
  traffic: IButtonState;
  logs: IButtonState;
  query: IButtonState;
  copy: IButtonState;
  delete: IButtonState;
}

/** The card's buttons: which one toggles the endpoint, their titles, and which are disabled. */
export function actionStates(ep: IEndpoint, busy: boolean): IActionStates {
  const manage = canManage(ep);
  const stopped = ep.badge === 'stopped';
  const updating = ep.badge === 'updating';
  const noRight = manage ? '' : ' (needs CAN_MANAGE)';
  return {
    toggle: stopped
      ? { action: 'start', title: `Start ${ep.name}${noRight}`, disabled: busy || !manage }
      : {
          action: 'stop',
          title: `Stop ${ep.name}${noRight}`,
          disabled: busy || updating || !manage
        },
    status: {
      title: `Open status: run %serve status ${ep.name} --watch in the notebook`,
      disabled: busy
    },
    traffic: {
      title: `Traffic: run %serve traffic ${ep.name} in the notebook (edit the split)`,
      disabled: busy || ep.entities.length === 0
    },
    logs: { title: `Logs: run %serve logs ${ep.name} in the notebook`, disabled: busy },
    query: {
      title: `Insert query cell: a %%query ${ep.name} cell with a request template`,
      disabled: busy || stopped
    },
    copy: {
      title: ep.url ? `Copy a request to ${ep.url}` : 'The endpoint URL is not known',
      disabled: !ep.url
    },
    delete: { title: `Delete ${ep.name}${noRight}`, disabled: busy || !manage }
  };
}

/** The cell that "Open status" inserts and runs. */
export function statusCell(name: string): string {
  return `%serve status ${name} --watch`;
}

/** The cell that "Traffic" inserts and runs (the traffic editor). */
export function trafficCell(name: string): string {
  return `%serve traffic ${name}`;
}

/** The cell that "Logs" inserts and runs. */
export function logsCell(name: string): string {
  return `%serve logs ${name}`;
}

// ---------------------------------------------------------------------------------------------
// Panel states and copied snippets

export interface IPanelView {
  loading: boolean;
  error: boolean;
  list: boolean;
  empty: boolean;
}

/** What the panel shows: an error hides the list and the "no endpoints" hint (only Retry remains). */
export function panelView(hasData: boolean, count: number, hasError: boolean): IPanelView {
  return {
    loading: !hasData && !hasError,
    error: hasError,
    list: hasData && !hasError,
    empty: hasData && !hasError && count === 0
  };
}

/** A shell single-quoted string ('it'\''s'). */
function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** A curl command for the endpoint: the token from `$DATABRICKS_TOKEN`, never the real one. */
export function curlCommand(url: string, body: unknown): string {
  return [
    `curl -X POST ${shellQuote(url)} \\`,
    `  -H "Authorization: Bearer $DATABRICKS_TOKEN" \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -d ${shellQuote(JSON.stringify(body ?? {}))}`
  ].join('\n');
}

/** A JSON value as a Python literal (True/False/None, JSON strings are valid Python strings). */
export function pyLiteral(value: unknown): string {
  if (value === null || value === undefined) {
    return 'None';
  }
  if (typeof value === 'boolean') {
    return value ? 'True' : 'False';
  }
  if (Array.isArray(value)) {
    return `[${value.map(pyLiteral).join(', ')}]`;
  }
  if (typeof value === 'object') {
    const items = Object.entries(value as Record<string, unknown>).map(
      ([k, v]) => `${JSON.stringify(k)}: ${pyLiteral(v)}`
    );
    return `{${items.join(', ')}}`;
  }
  return JSON.stringify(value);
}

const QUERY_ARGS = new Set([
  'dataframe_records',
  'inputs',
  'instances',
  'input',
  'messages',
  'prompt'
]);

/**
 * Python for the endpoint with databricks-sdk (no openai): `WorkspaceClient().serving_endpoints
 * .query(...)`, the request body's fields as its keyword arguments. Host and token come from the
 * environment (DATABRICKS_HOST / DATABRICKS_TOKEN) or ~/.databrickscfg.
 */
export function pythonSnippet(name: string, body: unknown, host?: string | null): string {
  const fields = body && typeof body === 'object' ? (body as Record<string, unknown>) : {};
  const args = [`name=${JSON.stringify(name)}`];
  const skipped: string[] = [];
  let split = false;
  for (const [key, value] of Object.entries(fields)) {
    if (key === 'dataframe_split') {
      split = true;
      args.push(`dataframe_split=DataframeSplitInput.from_dict(${pyLiteral(value)})`);
    } else if (QUERY_ARGS.has(key)) {
      args.push(`${key}=${pyLiteral(value)}`);
    } else {
      skipped.push(key);
    }
  }
  const lines = ['from databricks.sdk import WorkspaceClient'];
  if (split) {
    lines.push('from databricks.sdk.service.serving import DataframeSplitInput');
  }
  lines.push(
    '',
    host
      ? `w = WorkspaceClient(host=${JSON.stringify(host)})  # token: DATABRICKS_TOKEN or ~/.databrickscfg`
      : 'w = WorkspaceClient()  # host and token: DATABRICKS_HOST / DATABRICKS_TOKEN or ~/.databrickscfg'
  );
  if (skipped.length) {
    lines.push(`# not query() arguments, left out: ${skipped.join(', ')}`);
  }
  lines.push(
    `response = w.serving_endpoints.query(${args.join(', ')})`,
    'print(response.as_dict())'
  );
  return lines.join('\n');
}

/** The workspace URL of an invocation URL ("https://h/serving-endpoints/x/invocations" -> "https://h"). */
export function hostOf(url: string | null | undefined): string | null {
  if (!url) {
    return null;
  }
  const at = url.indexOf('/serving-endpoints/');
  return at > 0 ? url.slice(0, at) : null;
}

/**
 * What a card shows, as a string: the card is rebuilt only when this changes (the relative time
 * is updated in place).
 */
export function cardKey(ep: IEndpoint, busy: Busy | undefined, error: string | undefined): string {
  return JSON.stringify([ep, busy, error]);
}
