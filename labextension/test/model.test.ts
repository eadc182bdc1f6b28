/**
 * Unit tests of the sidebar's pure logic (src/model.ts), run by Node's test runner: `jlpm test`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  actionStates,
  backendLabel,
  badgeView,
  BUSY_INTERVAL,
  cardKey,
  configLabel,
  curlCommand,
  hostOf,
  logsCell,
  panelView,
  pyLiteral,
  pythonSnippet,
  trafficCell,
  endpointPath,
  entityView,
  errorKind,
  IDLE_INTERVAL,
  IEndpoint,
  IEntity,
  listParams,
  NOT_ENABLED_MESSAGE,
  parseBody,
  pendingLabel,
  pollInterval,
  relativeTime,
  responseError,
  ServingRequestError,
  statusCell,
  withQuery,
  workloadLabel
} from '../src/model';

function entity(overrides: Partial<IEntity> = {}): IEntity {
  return {
    name: 'iris-1',
    entity_name: 'main.default.iris',
    entity_version: '3',
    model: 'main.default.iris',
    workload: 'Small (0-4 concurrency)',
    workload_type: 'CPU',
    workload_size: 'Small',
    scale_to_zero: false,
    traffic: 80,
    deployment: null,
    message: '',
    ...overrides
  };
}

function endpoint(overrides: Partial<IEndpoint> = {}): IEndpoint {
  return {
    name: 'iris',
    badge: 'ready',
    state: 'Ready',
    ready: 'READY',
    config_update: 'NOT_UPDATING',
    suspend: null,
    config_version: 1,
    updated: null,
    created: null,
    creator: null,
    permission_level: null,
    entities: [entity()],
    pending: null,
    message: '',
    ...overrides
  };
}

describe('relativeTime', () => {
  const now = Date.UTC(2025, 0, 31, 12, 0, 0);
  const ago = (seconds: number) => now - seconds * 1000;

  it('is empty without a time', () => {
    assert.equal(relativeTime(null, now), '');
    assert.equal(relativeTime(0, now), '');
  });

  it('says "just now" under 45 s, and for times in the future', () => {
    assert.equal(relativeTime(ago(0), now), 'just now');
    assert.equal(relativeTime(ago(44), now), 'just now');
    assert.equal(relativeTime(now + 60_000, now), 'just now');
  });

  it('counts minutes, hours and days', () => {
    assert.equal(relativeTime(ago(45), now), '1 min ago');
    assert.equal(relativeTime(ago(5 * 60), now), '5 min ago');
    assert.equal(relativeTime(ago(59 * 60), now), '59 min ago');
    assert.equal(relativeTime(ago(60 * 60), now), '1 h ago');
    assert.equal(relativeTime(ago(23 * 3600), now), '23 h ago');
    assert.equal(relativeTime(ago(24 * 3600), now), '1 d ago');
    assert.equal(relativeTime(ago(29 * 86400), now), '29 d ago');
  });

  it('gives the date from 30 days on', () => {
    const then = ago(45 * 86400);
    assert.equal(relativeTime(then, now), new Date(then).toLocaleDateString());
    assert.doesNotMatch(relativeTime(then, now), /ago/);
  });
});

describe('labels', () => {
  it('drops a leading "the " from the backend', () => {
    assert.equal(
      backendLabel('the local backend at http://127.0.0.1:9'),
      'local backend at http://127.0.0.1:9'
    );
    assert.equal(backendLabel('Databricks workspace (the one)'), 'Databricks workspace (the one)');
  });

  it('labels the workload: size, type (CPU by default), scale to zero', () => {
    assert.equal(workloadLabel(entity()), 'Small · CPU');
    assert.equal(
      workloadLabel(entity({ workload_size: 'Medium', workload_type: 'GPU_SMALL' })),
      'Medium · GPU_SMALL'
    );
    assert.equal(workloadLabel(entity({ workload_size: null, workload_type: '' })), 'CPU');
    assert.equal(workloadLabel(entity({ scale_to_zero: true })), 'Small · CPU · →0');
  });

  it('labels the config version, 0 included', () => {
    assert.equal(configLabel(endpoint({ config_version: 3 })), 'config v3');
    assert.equal(configLabel(endpoint({ config_version: 0 })), 'config v0');
    assert.equal(configLabel(endpoint({ config_version: null })), null);
  });

  it('describes a pending update', () => {
    assert.equal(pendingLabel(endpoint()), null);
    const pending = {
      config_version: 4,
      entities: [entity({ model: 'm.a' }), entity({ model: 'm.b' })]
    };
    assert.equal(pendingLabel(endpoint({ pending })), 'Deploying config v4: m.a, m.b');
    assert.equal(
      pendingLabel(endpoint({ pending: { config_version: null, entities: [entity()] } })),
      'Deploying config v?: main.default.iris'
    );
  });

  it('says the state in the Serving UI words, or what the user waits on', () => {
    const ep = endpoint({ badge: 'update failed', state: 'Not ready (Update failed)' });
    assert.deepEqual(badgeView(ep, undefined), {
      text: 'Not ready (Update failed)',
      badge: 'update failed',
      title: 'Not ready (Update failed)'
    });
    assert.deepEqual(badgeView(ep, 'stopping'), {
      text: 'stopping…',
      badge: 'updating',
      title: 'Not ready (Update failed)'
    });
  });
});

describe('entityView', () => {
  it('shows the last part of the model name, its version and traffic', () => {
    assert.deepEqual(entityView(entity()), {
      name: 'iris-1',
      detail: 'iris v3',
      leaf: 'iris',
      version: 'v3',
      title: 'main.default.iris (served entity iris-1)',
      workload: 'Small · CPU',
      traffic: '80%',
      barWidth: '80%'
    });
  });

  it('falls back to the model, then the entity name', () => {
    const view = entityView(entity({ entity_name: null, model: '', entity_version: null }));
    assert.equal(view.leaf, 'iris-1');
    assert.equal(view.version, '');
    assert.equal(view.title, 'iris-1 (served entity iris-1)');
  });

  it('clamps the traffic bar and leaves unknown traffic blank', () => {
    assert.equal(entityView(entity({ traffic: 0 })).traffic, '0%');
    assert.equal(entityView(entity({ traffic: null })).traffic, '');
    assert.equal(entityView(entity({ traffic: null })).barWidth, '0%');
    assert.equal(entityView(entity({ traffic: 150 })).barWidth, '100%');
    assert.equal(entityView(entity({ traffic: -5 })).barWidth, '0%');
  });
});

describe('actionStates', () => {
  it('offers stop for a running endpoint and start for a stopped one', () => {
    const running = actionStates(endpoint(), false);
    assert.equal(running.toggle.action, 'stop');
    assert.equal(running.toggle.title, 'Stop iris');
    assert.equal(running.toggle.disabled, false);
    assert.equal(running.query.disabled, false);

    const stopped = actionStates(endpoint({ badge: 'stopped' }), false);
    assert.equal(stopped.toggle.action, 'start');
    assert.equal(stopped.toggle.title, 'Start iris');
    assert.equal(stopped.toggle.disabled, false);
    assert.equal(stopped.query.disabled, true, 'a stopped endpoint cannot be queried');
    assert.equal(stopped.status.disabled, false);
  });

  it('does not stop an endpoint while it updates', () => {
    const states = actionStates(endpoint({ badge: 'updating' }), false);
    assert.equal(states.toggle.action, 'stop');
    assert.equal(states.toggle.disabled, true);
    assert.equal(states.delete.disabled, false);
  });

  it('disables every button while an action is in flight', () => {
    const states = actionStates(endpoint(), true);
    for (const state of [states.toggle, states.status, states.query, states.delete]) {
      assert.equal(state.disabled, true);
    }
  });

  it('needs CAN_MANAGE to stop, start or delete', () => {
    const query = actionStates(endpoint({ permission_level: 'CAN_QUERY' }), false);
    assert.equal(query.toggle.disabled, true);
    assert.equal(query.toggle.title, 'Stop iris (needs CAN_MANAGE)');
    assert.equal(query.delete.disabled, true);
    assert.equal(query.delete.title, 'Delete iris (needs CAN_MANAGE)');
    assert.equal(query.status.disabled, false);
    assert.equal(query.query.disabled, false);

    const manage = actionStates(endpoint({ permission_level: 'CAN_MANAGE' }), false);
    assert.equal(manage.toggle.disabled, false);
    assert.equal(manage.delete.title, 'Delete iris');
  });

  it('names the magics the status and query buttons insert', () => {
    const states = actionStates(endpoint(), false);
    assert.match(states.status.title, /%serve status iris --watch/);
    assert.match(states.query.title, /%%query iris /);
    assert.equal(statusCell('my-ep'), '%serve status my-ep --watch');
  });
});

describe('polling', () => {
  it('polls fast while an endpoint updates or an action is in flight', () => {
    assert.equal(pollInterval([endpoint(), endpoint({ badge: 'stopped' })], 0), IDLE_INTERVAL);
    assert.equal(pollInterval([endpoint(), endpoint({ badge: 'updating' })], 0), BUSY_INTERVAL);
    assert.equal(pollInterval([endpoint()], 1), BUSY_INTERVAL);
    assert.equal(pollInterval([], 0), IDLE_INTERVAL);
    assert.ok(BUSY_INTERVAL < IDLE_INTERVAL);
  });

  it('rebuilds a card only when what it shows changes', () => {
    const ep = endpoint();
    assert.equal(cardKey(ep, undefined, undefined), cardKey(endpoint(), undefined, undefined));
    assert.notEqual(cardKey(ep, undefined, undefined), cardKey(ep, 'stopping', undefined));
    assert.notEqual(cardKey(ep, undefined, undefined), cardKey(ep, undefined, 'boom'));
    assert.notEqual(
      cardKey(ep, undefined, undefined),
      cardKey(endpoint({ badge: 'stopped' }), undefined, undefined)
    );
  });
});

describe('requests', () => {
  it('builds endpoint paths with the name encoded', () => {
    assert.equal(endpointPath('iris'), 'endpoints/iris');
    assert.equal(endpointPath('iris', 'stop'), 'endpoints/iris/stop');
    assert.equal(endpointPath('a b/c?', 'query-template'), 'endpoints/a%20b%2Fc%3F/query-template');
  });

  it('adds query parameters only when there are some', () => {
    assert.equal(withQuery('/api/endpoints', {}), '/api/endpoints');
    assert.equal(withQuery('/api/endpoints', listParams(false)), '/api/endpoints');
    assert.equal(withQuery('/api/endpoints', listParams(true)), '/api/endpoints?reconnect=1');
    assert.equal(withQuery('/x', { a: '1 2', b: '&' }), '/x?a=1+2&b=%26');
  });

  it('parses JSON bodies, and gives null for empty or non-JSON ones', () => {
    assert.deepEqual(parseBody('{"endpoints": []}'), { endpoints: [] });
    assert.equal(parseBody(''), null);
    assert.equal(parseBody('<html>Bad gateway</html>'), null);
  });

  it("uses the server extension's error message and kind", () => {
    const error = responseError(502, 'Bad Gateway', {
      error: { message: 'Cannot connect to the backend', kind: 'ConnectionFailedError' }
    });
    assert.ok(error instanceof ServingRequestError);
    assert.ok(error instanceof Error);
    assert.equal(error.message, 'Cannot connect to the backend');
    assert.equal(error.kind, 'ConnectionFailedError');
    assert.equal(error.status, 502);
    assert.equal(error.name, 'ServingRequestError');
    assert.equal(responseError(500, '', { error: { message: 'x' } }).kind, 'Error');
  });

  it('says the server extension is not enabled on a bare 404', () => {
    const error = responseError(404, 'Not Found', null);
    assert.equal(error.kind, 'NotEnabled');
    assert.equal(error.message, NOT_ENABLED_MESSAGE);
    assert.match(error.message, /jupyter server extension enable jupyter_serving/);
    assert.equal(
      responseError(404, 'Not Found', { message: 'no such endpoint' }).kind,
      'HTTPError'
    );
  });

  it('falls back to the HTTP status and reason', () => {
    assert.equal(
      responseError(403, 'Forbidden', { message: "'_xsrf' argument missing" }).message,
      "The Jupyter server answered 403 ('_xsrf' argument missing)"
    );
    assert.equal(
      responseError(500, 'Internal Server Error', { reason: 'boom' }).message,
      'The Jupyter server answered 500 (boom)'
    );
    assert.equal(
      responseError(500, 'Internal Server Error', null).message,
      'The Jupyter server answered 500 (Internal Server Error)'
    );
    assert.equal(responseError(500, '', null).message, 'The Jupyter server answered 500');
    assert.equal(responseError(500, '', 'text').kind, 'HTTPError');
  });

  it('gives the error kind of any error', () => {
    assert.equal(
      errorKind(new ServingRequestError('m', 'AuthenticationError', 401)),
      'AuthenticationError'
    );
    assert.equal(errorKind(new TypeError('x')), 'Error');
  });
});

describe('UX round: the sidebar', () => {
  it('names a row by its served entity, with model and version secondary', () => {
    const view = entityView(entity());
    assert.equal(view.name, 'iris-1');
    assert.equal(view.detail, 'iris v3');
    // no model: the entity name alone, not repeated
    const bare = entityView(entity({ entity_name: null, model: '', entity_version: null }));
    assert.equal(bare.name, 'iris-1');
    assert.equal(bare.detail, '');
  });

  it('shows only the error (with Retry) when the backend is down', () => {
    assert.deepEqual(panelView(true, 0, true), {
      loading: false,
      error: true,
      list: false,
      empty: false
    });
    assert.deepEqual(panelView(false, 0, true).empty, false);
    assert.deepEqual(panelView(true, 0, false), {
      loading: false,
      error: false,
      list: true,
      empty: true
    });
    assert.equal(panelView(false, 0, false).loading, true);
    assert.equal(panelView(true, 2, false).empty, false);
  });

  it('copies curl with $DATABRICKS_TOKEN, never a token', () => {
    const url = 'https://h.example/serving-endpoints/iris/invocations';
    const text = curlCommand(url, { inputs: ["it's"] });
    assert.ok(text.startsWith(`curl -X POST '${url}'`));
    assert.ok(text.includes('Authorization: Bearer $DATABRICKS_TOKEN'));
    assert.ok(text.includes(`-d '{"inputs":["it'\\''s"]}'`));
    assert.ok(!/dapi/.test(text));
  });

  it('copies Python for databricks-sdk serving_endpoints.query, no openai', () => {
    const text = pythonSnippet(
      'iris',
      { dataframe_split: { columns: ['a'], data: [[1.5, true, null]] }, params: { k: 1 } },
      'https://h.example'
    );
    assert.ok(text.includes('from databricks.sdk import WorkspaceClient'));
    assert.ok(text.includes('w = WorkspaceClient(host="https://h.example")'));
    assert.ok(
      text.includes(
        'w.serving_endpoints.query(name="iris", dataframe_split=DataframeSplitInput.from_dict(' +
          '{"columns": ["a"], "data": [[1.5, True, None]]}))'
      )
    );
    assert.ok(text.includes('left out: params'));
    assert.ok(!/openai/i.test(text));
    assert.equal(pyLiteral({ a: [false, 'x'] }), '{"a": [False, "x"]}');
    assert.equal(
      hostOf('https://h.example/serving-endpoints/iris/invocations'),
      'https://h.example'
    );
    assert.equal(hostOf(null), null);
  });

  it('offers Traffic and Logs actions that run their magics', () => {
    const states = actionStates(endpoint(), false);
    assert.ok(states.traffic.title.includes('%serve traffic iris'));
    assert.ok(states.logs.title.includes('%serve logs iris'));
    assert.equal(states.copy.disabled, true); // no URL known
    assert.equal(actionStates(endpoint({ url: 'https://h/x' }), false).copy.disabled, false);
    assert.equal(trafficCell('iris'), '%serve traffic iris');
    assert.equal(logsCell('iris'), '%serve logs iris');
  });
});
