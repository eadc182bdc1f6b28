"""The client side: the ServingClient API over databricks-sdk, connection resolution, the local
backend's launcher (localctl) and the model registry catalog. Imports only `core` and `datadir`.

service (ServingClient, composed of endpoints, deploy, waiting, query, admin over base), session
(the default client), checks (client-side validation), sdk_compat (typed SDK calls vs raw REST),
errors (SDK exceptions -> core.errors), connection, localctl, catalog.
"""
