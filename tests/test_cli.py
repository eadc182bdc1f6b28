"""`jupyter-serving local ...`: start (idempotent), status, env, token, stop — on a private data dir."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys

import requests


def cli(*args, home) -> subprocess.CompletedProcess:
    env = {**os.environ, "JUPYTER_SERVING_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "jupyter_serving.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_local_lifecycle(tmp_path):
    home = tmp_path / "home"
    assert cli("local", "status", home=home).returncode == 1
    assert "not running" in cli("local", "env", home=home).stderr
    first = cli("local", "start", "--cloud", "gcp", home=home)
    try:
        assert first.returncode == 0, first.stderr
        assert first.stdout.startswith("Started local backend at http://127.0.0.1:") and "cloud gcp" in first.stdout
        again = cli("local", "start", home=home)
        assert again.stdout.startswith("Already running:") and again.stdout.split()[5] == first.stdout.split()[4]
        token = (home / "token").read_text().strip()
        assert token not in first.stdout + first.stderr + again.stdout
        assert oct((home / "token").stat().st_mode & 0o777) == "0o600"

        exports = dict(line.removeprefix("export ").split("=", 1)
                       for line in cli("local", "env", home=home).stdout.splitlines())
        exports = {k: shlex.split(v)[0] for k, v in exports.items()}
        assert set(exports) == {"DATABRICKS_HOST", "DATABRICKS_TOKEN", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"}
        assert exports["DATABRICKS_TOKEN"] == token
        assert exports["MLFLOW_TRACKING_URI"] == f"sqlite:///{home / 'mlflow.db'}"
        auth = {"Authorization": f"Bearer {token}"}
        host = exports["DATABRICKS_HOST"]
        assert requests.get(f"{host}/api/2.0/serving-endpoints", headers=auth, timeout=10).json() == {"endpoints": []}
        assert requests.get(f"{host}/.well-known/databricks-config", timeout=10).json()["cloud"] == "GCP"
        # workload types follow the configured cloud: GCP offers only GPU_MEDIUM
        refused = requests.post(f"{host}/api/2.0/serving-endpoints", headers=auth, timeout=10, json={
            "name": "g", "config": {"served_entities": [{"entity_name": "m", "entity_version": "1",
                                                         "workload_type": "GPU_SMALL"}]}})
        assert refused.status_code == 400 and "not offered on GCP" in refused.json()["message"]

        alice = cli("local", "token", "--user", "alice@example.com", home=home).stdout.strip()
        assert alice.startswith("dapi") and alice != token
        listed = requests.get(f"{host}/api/2.0/serving-endpoints", headers={"Authorization": f"Bearer {alice}"},
                              timeout=10)
        assert listed.status_code == 200

        status = cli("local", "status", home=home)
        assert status.returncode == 0 and host in status.stdout
    finally:
        stopped = cli("local", "stop", home=home)
    assert stopped.stdout.strip() == "Stopped the local backend."
    assert cli("local", "status", home=home).returncode == 1
    assert not (home / "server.json").exists()
    assert cli("local", "stop", home=home).stdout.strip() == "The local backend was not running."
