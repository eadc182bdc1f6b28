"""GPU sizing and workload-type advice (jupyter_serving.core.gpu_fit): pure, no backend."""
from __future__ import annotations

import pytest

from jupyter_serving.core import gpu_fit
from jupyter_serving.core.gpu_fit import ERROR, GB, INFO, WARNING
from jupyter_serving.core.workloads import find_workload_type, workload_types


def levels(advice):
    return [a.level for a in advice]


def test_needed_memory_is_artifact_times_overhead():
    assert gpu_fit.needed_gpu_memory_gb(10 * GB) == pytest.approx(12.0)
    assert gpu_fit.needed_gpu_memory_gb(None) is None
    assert gpu_fit.needed_gpu_memory_gb(0) == 0


def test_fit_keeps_headroom():
    t4 = find_workload_type("aws", "GPU_SMALL")  # 16 GB -> 12.8 GB usable
    assert gpu_fit.usable_gpu_memory_gb(t4) == pytest.approx(12.8)
    assert gpu_fit.fits(t4, int(10.6 * GB)) is True  # 12.72 GB needed
    assert gpu_fit.fits(t4, int(10.7 * GB)) is False  # 12.84 GB needed: fits the card, not the headroom
    assert gpu_fit.fits(t4, None) is None
    assert gpu_fit.fits(find_workload_type("aws", "CPU"), GB) is None


def test_fit_table_lists_every_type_of_the_cloud_in_order():
    rows = gpu_fit.fit_table("azure", 20 * GB)  # needs 24 GB
    assert [r.name for r in rows] == [w.name for w in workload_types("azure")]
    verdicts = {r.name: r.fits for r in rows}
    assert verdicts["CPU"] is None and verdicts["GPU_SMALL"] is False and verdicts["GPU_LARGE"] is True
    assert all(r.needed_gb == pytest.approx(24.0) for r in rows if r.workload.is_gpu)


@pytest.mark.parametrize("cloud,size_gb,expected", [
    ("aws", 1, "GPU_SMALL"),        # 1.2 GB: the T4
    ("aws", 12, "GPU_MEDIUM"),      # 14.4 GB: more than a T4's 12.8 usable, less than an A10G's 19.2
    ("aws", 30, "MULTIGPU_MEDIUM"),  # 36 GB: four A10G (the first 96 GB type listed)
    ("aws", 200, "GPU_LARGE_8"),    # 240 GB: 8×A100 (A100 before H100 at equal memory)
    ("azure", 12, "GPU_LARGE"),     # no 24 GB type on Azure: the A100 80 GB
    ("azure", 100, "GPU_LARGE_2"),
    ("gcp", 15, "GPU_MEDIUM"),      # the only GPU type on GCP (L4)
])
def test_recommends_the_smallest_gpu_that_fits(cloud, size_gb, expected):
    rec = gpu_fit.recommend(cloud, int(size_gb * GB), ["transformers"])
    assert rec.workload_type == expected
    assert "GB of GPU memory" in rec.reason


def test_nothing_fits_says_so():
    rec = gpu_fit.recommend("gcp", 40 * GB, ["pytorch"])
    assert rec.workload_type is None
    assert "largest type on GCP" in rec.reason and "GPU_MEDIUM" in rec.reason


def test_classical_models_get_cpu_and_huge_artifacts_get_a_gpu():
    assert gpu_fit.recommend("aws", 3_000_000, ["python_function", "sklearn"]).workload_type == "CPU"
    assert gpu_fit.recommend("aws", None, ["sklearn"]).workload_type == "CPU"
    # a pyfunc of 5 GB is a deep-learning model whatever its flavor says
    assert gpu_fit.recommend("aws", 5 * GB, ["python_function"]).workload_type == "GPU_SMALL"
    # unknown size, GPU flavor: the smallest GPU type
    rec = gpu_fit.recommend("azure", None, ["pytorch"])
    assert rec.workload_type == "GPU_SMALL" and "unknown" in rec.reason


def test_unknown_cloud_is_refused():
    with pytest.raises(ValueError):
        gpu_fit.recommend("oracle", GB)


def test_check_warns_when_the_type_is_too_small():
    advice = gpu_fit.check("aws", "GPU_SMALL", 15 * GB, ["transformers"])  # needs 18 GB
    assert levels(advice) == [WARNING]
    assert "Too small" in advice[0].text and "GPU_MEDIUM" in advice[0].text and "18.0 GB" in advice[0].text


def test_check_errors_when_the_type_is_not_offered_on_the_cloud():
    advice = gpu_fit.check("gcp", "GPU_SMALL", 2 * GB, ["pytorch"])
    assert levels(advice) == [ERROR]
    text = advice[0].text
    assert "not offered on GCP" in text and "AWS, AZURE" in text and "Suggested: GPU_MEDIUM" in text
    assert levels(gpu_fit.check("aws", "GPU_LARGE", GB)) == [ERROR]  # Azure only


def test_check_hints_on_oversized_multi_gpu_and_cpu_choices():
    assert gpu_fit.check("aws", "GPU_MEDIUM", 12 * GB, ["transformers"]) == []  # the recommended type
    bigger = gpu_fit.check("aws", "GPU_XLARGE_8", 2 * GB, ["transformers"])
    assert levels(bigger) == [INFO] and "Larger than needed" in bigger[0].text and "GPU_SMALL" in bigger[0].text
    sharded = gpu_fit.check("aws", "MULTIGPU_MEDIUM", 30 * GB, ["transformers"])
    assert levels(sharded) == [INFO] and "shard" in sharded[0].text
    slow = gpu_fit.check("aws", "CPU", 4 * GB, ["transformers"])
    assert levels(slow) == [WARNING] and "slow on CPU" in slow[0].text
    wasted = gpu_fit.check("aws", "GPU_SMALL", 1_000_000, ["sklearn"])
    assert levels(wasted) == [INFO] and "CPU costs less" in wasted[0].text
    assert gpu_fit.check("aws", "CPU", 1_000_000, ["sklearn"]) == []
    assert gpu_fit.check("aws", None, None) == []


def test_helpers():
    assert gpu_fit.format_bytes(None) == "unknown size"
    assert gpu_fit.format_bytes(512) == "512 B"
    assert gpu_fit.format_bytes(2_345_678) == "2.3 MB"
    assert gpu_fit.format_bytes(16 * GB) == "16.0 GB"
    assert [gpu_fit.snap_concurrency(v) for v in (-3, 0, 1, 2, 5, 7, 30)] == [0, 0, 0, 4, 4, 8, 32]
    assert [gpu_fit.replicas(c) for c in (0, 4, 8, 64)] == [1, 1, 2, 16]
    assert "cold start" in gpu_fit.SCALE_TO_ZERO_CAVEAT


def test_gpu_fit_is_pure():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(gpu_fit))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "collections.abc", "dataclasses", "typing", "jupyter_serving.core.workloads"}, \
        imported
