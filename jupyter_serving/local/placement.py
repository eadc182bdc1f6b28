"""Where a served entity runs: the environment of its model server, on a local GPU or on the CPU."""
from __future__ import annotations

import shutil
import subprocess

from jupyter_serving.core.workloads import find_workload_type


def detect_gpus() -> int:
    """How many NVIDIA GPUs this machine has (0 without nvidia-smi)."""
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def entity_env(spec: dict, mlflow_uri: str, cloud: str, gpu_count: int) -> tuple[dict[str, str], str]:
    """The model server's environment variables, and a note on its placement ('' for a CPU entity)."""
    env = {k: str(v) for k, v in (spec.get("environment_vars") or {}).items()}
    env["MLFLOW_TRACKING_URI"] = mlflow_uri
    env["MLFLOW_REGISTRY_URI"] = mlflow_uri
    wt = find_workload_type(cloud, spec.get("workload_type") or "CPU")
    if wt is None or not wt.is_gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
        return env, ""
    if gpu_count >= wt.gpu_count:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(wt.gpu_count))
        return env, f"Running on {wt.gpu_count} local GPU(s) for {wt.name}."
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env, (f"{wt.name} asks for {wt.gpu_count}×{wt.gpu}; this machine has "
                 f"{gpu_count} GPU(s), so the model runs on CPU.")
