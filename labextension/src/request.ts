/**
 * Calls to the jupyter-serving server extension (`/jupyter-serving/api/...`).
 *
 * Requests go through `ServerConnection.makeRequest`, which adds the token and the XSRF header.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export type Badge =
  | 'ready'
  | 'updating'
  | 'update failed'
  | 'stopped'
  | 'not ready';

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

const NAMESPACE = 'jupyter-serving/api';

export async function requestAPI<T>(
  path: string,
  init: RequestInit = {},
  params: Record<string, string> = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  let url = URLExt.join(settings.baseUrl, NAMESPACE, path);
  const query = new URLSearchParams(params).toString();
  if (query) {
    url += '?' + query;
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServingRequestError(
      'Cannot reach the Jupyter server (is it still running?)',
      'NetworkError',
      0
    );
  }
  const text = await response.text();
  let data: any = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const err = data && data.error;
    if (err && typeof err.message === 'string') {
      throw new ServingRequestError(err.message, err.kind || 'Error', response.status);
    }
    if (response.status === 404 && !data) {
      throw new ServingRequestError(
        'The jupyter-serving server extension is not enabled: run `jupyter server extension enable jupyter_serving` and restart JupyterLab',
        'NotEnabled',
        404
      );
    }
    const reason = (data && (data.message || data.reason)) || response.statusText;
    throw new ServingRequestError(
      `The Jupyter server answered ${response.status}${reason ? ' (' + reason + ')' : ''}`,
      'HTTPError',
      response.status
    );
  }
  return data as T;
}

export function listEndpoints(reconnect = false): Promise<IEndpointList> {
  return requestAPI<IEndpointList>(
    'endpoints',
    {},
    reconnect ? { reconnect: '1' } : {}
  );
}

function enc(name: string): string {
  return encodeURIComponent(name);
}

export function stopEndpoint(name: string): Promise<IEndpoint> {
  return requestAPI<IEndpoint>(`endpoints/${enc(name)}/stop`, { method: 'POST' });
}

export function startEndpoint(name: string): Promise<IEndpoint> {
  return requestAPI<IEndpoint>(`endpoints/${enc(name)}/start`, { method: 'POST' });
}

export function deleteEndpoint(name: string): Promise<{ deleted: string }> {
  return requestAPI(`endpoints/${enc(name)}`, { method: 'DELETE' });
}

export function queryTemplate(name: string): Promise<IQueryTemplate> {
  return requestAPI<IQueryTemplate>(`endpoints/${enc(name)}/query-template`);
}
