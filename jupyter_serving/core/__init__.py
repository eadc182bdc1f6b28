"""Pure rules and views: no I/O, no network, and no import of any other part of jupyter_serving.

rules (names, configs, traffic, concurrency), workloads (the workload catalog), traffic_split,
gpu_fit, status (the endpoint status view), query_body (request bodies), results (answers as
DataFrames), arguments (command-line style values), errors (the exception hierarchy), configs
(create/update requests), templates (request bodies from an OpenAPI schema), chat (stream chunks
of every chat dialect -> ChatDelta / ChatAnswer), chat_body (chat bodies per task), sse (server-sent
events), records (inference table and usage rows, their SQL), metrics (Prometheus text, rates).
"""
