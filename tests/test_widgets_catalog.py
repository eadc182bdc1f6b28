"""Where the create form reads models from, and what it shows when the registry cannot be read."""
from __future__ import annotations

import pytest

from jupyter_serving.client.catalog import ModelInfo, _artifact_facts
from jupyter_serving.widgets import CreateEndpointForm, ModelCatalog, StaticCatalog
from jupyter_serving.widgets.codegen import magic_line, sdk_code
from jupyter_serving.widgets.create_form import endpoint_name_for
from tests.conftest import poll


class Target:
    def __init__(self, kind="workspace", profile=None, data_dir=None):
        self.kind, self.profile, self.data_dir = kind, profile, data_dir


class FakeClient:
    cloud, backend, poll_max_interval = "aws", "a fake backend", 0.1

    def __init__(self, is_local=False, target=None, backend_uri=None):
        self.is_local = is_local
        self.target = target or Target()
        uri = backend_uri

        class Api:
            def do(self, method, path, **kwargs):
                assert (method, path) == ("GET", "/api/2.0/jupyter-serving/backend")
                return {"mlflow_uri": uri}

        class Workspace:
            api_client = Api()

        self.workspace = Workspace()

    def names(self):
        return ["taken"]


def test_registry_uri_follows_the_backend(monkeypatch):
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    local = ModelCatalog(FakeClient(is_local=True, backend_uri="sqlite:////data/mlflow.db"))
    assert local._uris() == ("sqlite:////data/mlflow.db", "sqlite:////data/mlflow.db")
    assert local.description == "the local MLflow registry"
    uc = ModelCatalog(FakeClient())
    assert uc._uris() == ("databricks-uc", "databricks") and uc.description == "Unity Catalog"
    assert ModelCatalog(FakeClient(target=Target(profile="dev")))._uris() == ("databricks-uc://dev", "databricks://dev")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "databricks")
    assert ModelCatalog(FakeClient())._uris()[0] == "databricks"  # the user's own choice wins on a workspace
    assert ModelCatalog(registry_uri="sqlite:///x.db")._uris() == ("sqlite:///x.db", "sqlite:///x.db")


def test_artifact_facts_of_a_local_model(tmp_path):
    (tmp_path / "MLmodel").write_text("flavors:\n  python_function: {}\n  transformers: {}\n")
    (tmp_path / "weights.bin").write_bytes(b"x" * 5000)
    size, flavors = _artifact_facts(tmp_path.as_uri())
    assert size == 5000 + len((tmp_path / "MLmodel").read_bytes())
    assert flavors == ("python_function", "transformers")


def test_static_catalog_orders_versions_newest_first():
    cat = StaticCatalog({"m": {"1": 10, "10": 20, "2": {"size_bytes": 30, "flavors": ["sklearn"]}}})
    assert cat.models() == ["m"] and cat.versions("m") == ["10", "2", "1"]
    assert cat.info("m", "2") == ModelInfo("m", "2", 30, ("sklearn",))
    assert cat.info("m", "1").size_bytes == 10


def test_unreadable_registry_is_reported_in_the_form():
    class Broken(StaticCatalog):
        description = "a broken registry"

        def models(self):
            raise ConnectionError("registry at sqlite:///gone.db is unreachable")

    form = CreateEndpointForm(FakeClient(), catalog=Broken({}))
    poll(lambda: form.state == "editing" and form.pending == 0, 10, 0.02, "the failed load")
    assert "unreachable" in form.message and "unreachable" in form.validation.value
    assert form.entities[0].model.options == (("(registry unavailable)", None),)
    form.name.value = "typing-does-not-hide-it"
    assert "unreachable" in form.validation.value
    assert form.create_button.disabled and "choose a model" in form.errors[-1]


def test_empty_registry_says_how_to_register():
    form = CreateEndpointForm(FakeClient(), catalog=StaticCatalog({}, "an empty registry"))
    poll(lambda: form.state == "editing" and form.pending == 0, 10, 0.02, "the load")
    assert "No registered models in an empty registry" in form.validation.value
    assert form.entities[0].model.options == (("No registered models", None),)
    assert form.create_button.disabled


def test_default_endpoint_names():
    assert endpoint_name_for("main.ml.iris") == "iris"
    assert endpoint_name_for("main.ml.iris", {"iris", "iris-2"}) == "iris-3"
    assert endpoint_name_for("cat.sch.My Model!") == "My-Model"
    assert endpoint_name_for("main.x.databricks-llm") == "my-databricks-llm"
    assert endpoint_name_for("...") == "endpoint"


@pytest.mark.parametrize("entities,traffic,expected", [
    ([{"entity_name": "m.s.a", "entity_version": "1", "name": "a-1", "workload_type": "CPU",
       "workload_size": "Small", "scale_to_zero_enabled": True}], {"a-1": 100},
     "%serve create ep --model m.s.a --version 1 --workload-size Small --scale-to-zero"),
    ([{"entity_name": "m.s.a", "entity_version": "1", "name": "champ", "workload_type": "GPU_SMALL",
       "min_provisioned_concurrency": 4, "max_provisioned_concurrency": 8}], {"champ": 100},
     "%serve create ep --model m.s.a --version 1 --entity-name champ --workload-type GPU_SMALL "
     "--min-concurrency 4 --max-concurrency 8"),
])
def test_magic_line(entities, traffic, expected):
    assert magic_line("ep", entities, traffic) == expected


def test_sdk_code_for_the_local_backend_and_profiles_compiles():
    entities = [{"entity_name": "m.s.a", "entity_version": "1", "name": "a-1", "workload_type": "GPU_MEDIUM_4",
                 "workload_size": "Small"}]
    local = sdk_code("ep", entities, None, local=True, data_dir="/data")
    assert "api.connect(local=True, data_dir='/data').workspace" in local and "WorkspaceClient()" not in local
    assert "'traffic_percentage': 100" in local
    compile(local, "<code>", "exec")
    prof = sdk_code("ep", [dict(entities[0], workload_type="GPU_SMALL")], {"a-1": 100}, profile="dev")
    assert "WorkspaceClient(profile='dev')" in prof and "ServingModelWorkloadType.GPU_SMALL" in prof
    compile(prof, "<code>", "exec")


def test_a_workload_type_the_cloud_lacks_is_refused_with_the_alternatives():
    catalog = StaticCatalog({"main.llm.chat": {"1": ModelInfo("main.llm.chat", "1", 15_000_000_000, ("transformers",))}})
    form = CreateEndpointForm(FakeClient(), catalog=catalog, workload_type="GPU_LARGE")  # Azure's A100
    poll(lambda: form.state == "editing" and form.pending == 0, 10, 0.02, "the load")
    entity = form.entities[0]
    assert entity.workload_type.value == "CPU"  # not silently set to something the cloud lacks
    assert "GPU_LARGE is not offered on AWS (it exists on AZURE)" in entity.unavailable
    assert "GPU_LARGE is not offered on AWS" in entity.advice.value
    assert any("GPU_LARGE is not offered on AWS" in e for e in form.errors) and form.create_button.disabled
    entity.workload_type.value = "GPU_MEDIUM"  # the user picks one offered here
    assert entity.unavailable == "" and form.errors == [] and not form.create_button.disabled
    assert entity.request_workload_type("GPU_SMALL") and entity.workload_type.value == "GPU_SMALL"
