/**
 * Calls to the jupyter-serving server extension (`/jupyter-serving/api/...`).
 *
 * Requests go through `ServerConnection.makeRequest`, which adds the token and the XSRF header.
 * Paths, bodies and errors are built by the pure helpers in `./model`.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  endpointPath,
  IEndpoint,
  IEndpointList,
  IQueryTemplate,
  listParams,
  NAMESPACE,
  parseBody,
  responseError,
  ServingRequestError,
  withQuery
} from './model';

export type { Badge, IEndpoint, IEndpointList, IEntity, IQueryTemplate } from './model';
export { ServingRequestError } from './model';

export async function requestAPI<T>(
  path: string,
  init: RequestInit = {},
  params: Record<string, string> = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = withQuery(URLExt.join(settings.baseUrl, NAMESPACE, path), params);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch {
    throw new ServingRequestError(
      'Cannot reach the Jupyter server (is it still running?)',
      'NetworkError',
      0
    );
  }
  const data = parseBody(await response.text());
  if (!response.ok) {
    throw responseError(response.status, response.statusText, data);
  }
  return data as T;
}

export function listEndpoints(reconnect = false): Promise<IEndpointList> {
  return requestAPI<IEndpointList>('endpoints', {}, listParams(reconnect));
}

export function stopEndpoint(name: string): Promise<IEndpoint> {
  return requestAPI<IEndpoint>(endpointPath(name, 'stop'), { method: 'POST' });
}

export function startEndpoint(name: string): Promise<IEndpoint> {
  return requestAPI<IEndpoint>(endpointPath(name, 'start'), { method: 'POST' });
}

export function deleteEndpoint(name: string): Promise<{ deleted: string }> {
  return requestAPI(endpointPath(name), { method: 'DELETE' });
}

export function queryTemplate(name: string): Promise<IQueryTemplate> {
  return requestAPI<IQueryTemplate>(endpointPath(name, 'query-template'));
}
