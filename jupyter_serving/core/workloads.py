"""Workload catalog: what each cloud offers and what each size means. Pure data, no I/O.

Hardware figures come from public third-party tables (reference/serving-api.md); verify before
quoting them as Databricks' own.
"""
from __future__ import annotations

from dataclasses import dataclass

CLOUDS = ("aws", "azure", "gcp")


@dataclass(frozen=True)
class WorkloadType:
    name: str
    gpu: str | None  # GPU model, None for CPU types
    gpu_count: int
    gpu_memory_gb: int  # total across GPUs

    @property
    def is_gpu(self) -> bool:
        return self.gpu_count > 0

    def describe(self) -> str:
        if not self.is_gpu:
            return f"{self.name} (CPU)"
        return f"{self.name} ({self.gpu_count}×{self.gpu}, {self.gpu_memory_gb} GB GPU memory)"


_CPU_TYPES = (
    WorkloadType("CPU", None, 0, 0),
    WorkloadType("CPU_MEDIUM", None, 0, 0),
    WorkloadType("CPU_LARGE", None, 0, 0),
)

WORKLOAD_TYPES: dict[str, tuple[WorkloadType, ...]] = {
    "aws": _CPU_TYPES
    + (
        WorkloadType("GPU_SMALL", "T4", 1, 16),
        WorkloadType("GPU_MEDIUM", "A10G", 1, 24),
        WorkloadType("MULTIGPU_MEDIUM", "A10G", 4, 96),
        WorkloadType("GPU_MEDIUM_4", "A10G", 4, 96),
        WorkloadType("GPU_MEDIUM_8", "A10G", 8, 192),
        WorkloadType("GPU_LARGE_8", "A100 80GB", 8, 640),
        WorkloadType("GPU_XLARGE_8", "H100", 8, 640),
    ),
    "azure": _CPU_TYPES
    + (
        WorkloadType("GPU_SMALL", "T4", 1, 16),
        WorkloadType("GPU_LARGE", "A100 80GB", 1, 80),
        WorkloadType("GPU_LARGE_2", "A100 80GB", 2, 160),
        WorkloadType("GPU_LARGE_8", "A100 80GB", 8, 640),
    ),
    "gcp": _CPU_TYPES + (WorkloadType("GPU_MEDIUM", "L4", 1, 24),),
}

# Concurrency (simultaneous requests) each workload size provides: (min, max).
# With scale to zero the minimum drops to 0.
WORKLOAD_SIZES: dict[str, tuple[int, int]] = {
    "Small": (4, 4),
    "Medium": (8, 16),
    "Large": (16, 64),
}

CONCURRENCY_STEP = 4  # provisioned concurrency comes in multiples of 4; GPU replicas = concurrency / 4


def workload_types(cloud: str) -> tuple[WorkloadType, ...]:
    return WORKLOAD_TYPES[cloud]


def find_workload_type(cloud: str, name: str) -> WorkloadType | None:
    for wt in WORKLOAD_TYPES.get(cloud, ()):
        if wt.name == name:
            return wt
    return None


def all_workload_type_names() -> set[str]:
    return {wt.name for types in WORKLOAD_TYPES.values() for wt in types}


def size_for_concurrency(max_concurrency: int) -> str | None:
    """The smallest named workload size whose range covers `max_concurrency`, or None (custom)."""
    for size, (_, high) in WORKLOAD_SIZES.items():
        if max_concurrency <= high:
            return size
    return None
