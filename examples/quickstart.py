"""The main job on the local backend, end to end, with the official clients only:
start the backend, train and register a model, serve it, query it, clean up.

    python examples/quickstart.py [--keep]
"""
from __future__ import annotations

import argparse
import os
import time

from jupyter_serving.client import localctl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the endpoint and the backend running")
    args = parser.parse_args()

    info, started = localctl.start()
    print(f"{'Started' if started else 'Using'} the local backend at {info.url} (data dir {info.home})")
    os.environ.update(info.env())

    import mlflow
    import pandas as pd
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.serving import EndpointCoreConfigInput, ServedEntityInput
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris(as_frame=True)
    X = iris.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    model = LogisticRegression(max_iter=500).fit(X, iris.target)
    with mlflow.start_run():
        logged = mlflow.sklearn.log_model(model, name="model", input_example=X.head(3))
    version = mlflow.register_model(logged.model_uri, "main.quickstart.iris").version
    print(f"Registered main.quickstart.iris version {version}")

    w = WorkspaceClient()
    name = "quickstart-iris"
    if name in {e.name for e in w.serving_endpoints.list()}:
        w.serving_endpoints.delete(name)
    started_at = time.monotonic()
    endpoint = w.serving_endpoints.create_and_wait(name, config=EndpointCoreConfigInput(
        name=name, served_entities=[ServedEntityInput(entity_name="main.quickstart.iris", entity_version=str(version),
                                                      workload_size="Small", scale_to_zero_enabled=False)]))
    print(f"Endpoint {name} is {endpoint.state.ready.value} after {time.monotonic() - started_at:.1f} s")

    rows = X.sample(5, random_state=0)
    result = w.serving_endpoints.query(name, dataframe_records=rows.to_dict("records"))
    print(f"Answered by served entity {result.served_model_name}:")
    print(rows.assign(predicted_class=pd.Series(result.predictions, index=rows.index)).to_string())

    if not args.keep:
        w.serving_endpoints.delete(name)
        if started:
            localctl.stop()
        print("Cleaned up (pass --keep to leave the endpoint running).")


if __name__ == "__main__":
    main()
