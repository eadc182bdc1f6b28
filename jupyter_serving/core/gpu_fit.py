"""Which workload type fits a model: GPU memory sizing from the model's artifact size. Pure: no I/O.

The estimate is deliberately simple and stated in the UI so that a user can judge it:

    needed GPU memory  = artifact size × OVERHEAD_FACTOR   (weights + activations, CUDA context, buffers)
    usable GPU memory  = the type's total GPU memory × (1 − HEADROOM)

A type fits when needed ≤ usable. Multi-GPU types count the memory of all their GPUs, which only
helps a model that is sharded across them (e.g. `device_map="auto"`); the advice says so.

Classical models (scikit-learn, XGBoost, ...) gain nothing from a GPU: they are recommended a CPU
type. Deep-learning flavors (transformers, PyTorch, TensorFlow, ...) and artifacts larger than
`CPU_ARTIFACT_LIMIT_BYTES` get the smallest GPU type of the workspace's cloud that fits.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from jupyter_serving.core.workloads import (
    CLOUDS,
    CONCURRENCY_STEP,
    WorkloadType,
    find_workload_type,
    workload_types,
)

OVERHEAD_FACTOR = 1.2
HEADROOM = 0.2
GB = 1_000_000_000
# Above this an artifact is almost certainly a deep-learning model, whatever its flavor says.
CPU_ARTIFACT_LIMIT_BYTES = 2 * GB

# MLflow flavors whose models run (much) faster on a GPU.
GPU_FLAVORS = frozenset({
    "transformers", "pytorch", "tensorflow", "keras", "sentence_transformers", "diffusers", "onnx",
    "paddle", "spacy", "johnsnowlabs", "llama_cpp", "mxnet", "fastai",
})

SCALE_TO_ZERO_CAVEAT = (
    "Scale to zero: no cost while idle, but the first request after an idle period waits for a cold "
    "start (10–20 s on Databricks for CPU, often minutes for large GPU models), and capacity is not "
    "guaranteed. Keep it off for latency-sensitive production traffic."
)

INFO, WARNING, ERROR = "info", "warning", "error"


@dataclass(frozen=True)
class Advice:
    level: str  # "info", "warning" or "error"
    text: str


@dataclass(frozen=True)
class Fit:
    """One row of the workload table: a type and whether the model fits in it."""

    workload: WorkloadType
    fits: bool | None  # None: size unknown, or a CPU type (no GPU memory to fit into)
    needed_gb: float | None
    usable_gb: float

    @property
    def name(self) -> str:
        return self.workload.name


@dataclass(frozen=True)
class Recommendation:
    workload_type: str | None  # None when nothing on this cloud fits
    reason: str


def format_bytes(size: int | float | None) -> str:
    """1234 -> '1.2 kB', 3_400_000_000 -> '3.4 GB' (decimal units, as GPU memory is quoted)."""
    if size is None:
        return "unknown size"
    size = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


def needed_gpu_memory_gb(artifact_bytes: int | None) -> float | None:
    """GPU memory the model needs to serve: its weights plus runtime overhead."""
    if artifact_bytes is None:
        return None
    return max(0.0, float(artifact_bytes)) / GB * OVERHEAD_FACTOR


def usable_gpu_memory_gb(workload: WorkloadType) -> float:
    return workload.gpu_memory_gb * (1 - HEADROOM)


def fits(workload: WorkloadType, artifact_bytes: int | None) -> bool | None:
    """True/False for a GPU type when the size is known; None for CPU types or an unknown size."""
    needed = needed_gpu_memory_gb(artifact_bytes)
    if not workload.is_gpu or needed is None:
        return None
    return needed <= usable_gpu_memory_gb(workload)


def fit_table(cloud: str, artifact_bytes: int | None) -> list[Fit]:
    """Every workload type the cloud offers, CPU types first, each with its fit for the model."""
    needed = needed_gpu_memory_gb(artifact_bytes)
    return [Fit(wt, fits(wt, artifact_bytes), needed if wt.is_gpu else None, usable_gpu_memory_gb(wt))
            for wt in workload_types(cloud)]


def wants_gpu(flavors: Iterable[str] = (), artifact_bytes: int | None = None) -> bool:
    """Does this model benefit from a GPU? Deep-learning flavors or a very large artifact."""
    flavors = {f.lower() for f in flavors or ()}
    if flavors & GPU_FLAVORS:
        return True
    return artifact_bytes is not None and artifact_bytes > CPU_ARTIFACT_LIMIT_BYTES


def _gpu_order(wt: WorkloadType) -> tuple:
    return (wt.gpu_memory_gb, wt.gpu_count)


def smallest_fitting_gpu(cloud: str, artifact_bytes: int | None) -> WorkloadType | None:
    """The GPU type with the least memory (then the fewest GPUs) that fits; with an unknown size,
    the smallest GPU type."""
    gpus = sorted((wt for wt in workload_types(cloud) if wt.is_gpu), key=_gpu_order)
    for wt in gpus:
        if artifact_bytes is None or fits(wt, artifact_bytes):
            return wt
    return None


def _flavor_words(flavors: Iterable[str]) -> str:
    known = sorted(set(flavors or ()) - {"python_function"})
    return "/".join(known) if known else "pyfunc"


def recommend(cloud: str, artifact_bytes: int | None, flavors: Iterable[str] = ()) -> Recommendation:
    """The workload type to start from for this model on this cloud, and why."""
    if cloud not in CLOUDS:
        raise ValueError(f"unknown cloud {cloud!r}")
    flavors = tuple(flavors or ())
    size = format_bytes(artifact_bytes)
    if not wants_gpu(flavors, artifact_bytes):
        return Recommendation("CPU", f"a {_flavor_words(flavors)} model of {size} does not need a GPU; "
                                     "CPU is the cheapest type")
    needed = needed_gpu_memory_gb(artifact_bytes)
    wt = smallest_fitting_gpu(cloud, artifact_bytes)
    if wt is None:
        largest = max((w for w in workload_types(cloud) if w.is_gpu), key=_gpu_order)
        return Recommendation(None, f"the model needs about {needed:.0f} GB of GPU memory; the largest type on "
                                    f"{cloud.upper()}, {largest.name}, offers {usable_gpu_memory_gb(largest):.0f} GB "
                                    f"usable: quantize or shard the model, or serve it elsewhere")
    if needed is None:
        return Recommendation(wt.name, f"a {_flavor_words(flavors)} model runs best on a GPU; its size is "
                                       f"unknown, so start with the smallest, {wt.describe()}")
    share = " (sharded across its GPUs)" if wt.gpu_count > 1 else ""
    return Recommendation(wt.name, f"needs about {needed:.1f} GB of GPU memory ({size} × {OVERHEAD_FACTOR}); "
                                   f"{wt.describe()} has {usable_gpu_memory_gb(wt):.1f} GB usable{share} "
                                   f"with {HEADROOM:.0%} headroom")


def check(cloud: str, workload_type: str | None, artifact_bytes: int | None,
          flavors: Iterable[str] = ()) -> list[Advice]:
    """What to tell the user about serving this model on `workload_type`: errors (not offered on the
    cloud, too little GPU memory), warnings and hints. An empty list means nothing to say."""
    flavors = tuple(flavors or ())
    name = workload_type or "CPU"
    out: list[Advice] = []
    wt = find_workload_type(cloud, name)
    rec = recommend(cloud, artifact_bytes, flavors)
    if wt is None:
        offered = ", ".join(w.name for w in workload_types(cloud) if w.is_gpu) or "none"
        elsewhere = [c.upper() for c in CLOUDS if find_workload_type(c, name) is not None]
        where = f" (it exists on {', '.join(elsewhere)})" if elsewhere else ""
        out.append(Advice(ERROR, f"{name} is not offered on {cloud.upper()}{where}; GPU types there: {offered}."
                          + (f" Suggested: {rec.workload_type}." if rec.workload_type else "")))
        return out
    needed = needed_gpu_memory_gb(artifact_bytes)
    if wt.is_gpu:
        if fits(wt, artifact_bytes) is False:
            better = smallest_fitting_gpu(cloud, artifact_bytes)
            fix = f" Choose {better.name} or larger." if better else " Nothing on this cloud fits: " + rec.reason + "."
            out.append(Advice(WARNING, f"Too small: the model needs about {needed:.1f} GB of GPU memory but "
                                     f"{wt.name} has {wt.gpu_memory_gb} GB ({usable_gpu_memory_gb(wt):.1f} GB usable "
                                     f"with {HEADROOM:.0%} headroom).{fix}"))
        elif needed is not None and wt.gpu_count > 1 and needed > usable_gpu_memory_gb(wt) / wt.gpu_count:
            out.append(Advice(INFO, f"The model only fits across {wt.gpu_count} GPUs: its serving code must shard "
                                    "it (e.g. device_map=\"auto\")."))
        elif rec.workload_type and rec.workload_type != wt.name:
            rec_wt = find_workload_type(cloud, rec.workload_type)
            if rec_wt is not None and rec_wt.is_gpu and _gpu_order(rec_wt) < _gpu_order(wt):
                out.append(Advice(INFO, f"Larger than needed: {rec_wt.describe()} would fit and costs less."))
            elif rec_wt is not None and not rec_wt.is_gpu:
                out.append(Advice(INFO, f"A {_flavor_words(flavors)} model does not use a GPU; CPU costs less."))
    elif rec.workload_type and rec.workload_type != "CPU" and wants_gpu(flavors, artifact_bytes):
        out.append(Advice(WARNING, f"A {_flavor_words(flavors)} model of {format_bytes(artifact_bytes)} "
                                   f"will be slow on CPU; {rec.workload_type} fits it."))
    return out


def snap_concurrency(value: int | float) -> int:
    """The nearest valid provisioned concurrency (a multiple of 4, never negative)."""
    value = max(0.0, float(value))
    return int(value / CONCURRENCY_STEP + 0.5) * CONCURRENCY_STEP  # halves round up


def replicas(max_concurrency: int) -> int:
    """GPU replicas behind a provisioned concurrency (concurrency ÷ 4, at least one)."""
    return max(1, int(max_concurrency) // CONCURRENCY_STEP)
