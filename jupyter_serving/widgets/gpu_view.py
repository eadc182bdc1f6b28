"""HTML views of GPU fit for the create form: one served entity's advice, and the workload-type table.

Pure renderers over `jupyter_serving.core.gpu_fit` (no widgets, no I/O): the form and its entity
editors pass in what they show.
"""
from __future__ import annotations

from collections.abc import Sequence

from jupyter_serving.client.catalog import ModelInfo
from jupyter_serving.core import gpu_fit, rules
from jupyter_serving.core.workloads import find_workload_type
from jupyter_serving.widgets._common import BLUE, GREEN, GREY, RED, esc, format_gb, format_size, note, table


def _need(gb: float) -> str:
    """'≈ 18 GB', or '< 0.1 GB' for a small model."""
    text = format_gb(gb)
    return text if text.startswith("<") else f"≈ {text}"


def _facts_html(cloud: str, info: ModelInfo, workload_type: str,
                rec: gpu_fit.Recommendation | None) -> str:
    flavors = ", ".join(f for f in info.flavors if f != "python_function") or "pyfunc"
    facts = (f"Model artifacts: <b>{esc(format_size(info.size_bytes))}</b> · flavor {esc(flavors)}"
             if info.size_bytes is not None else
             f"Model artifacts: size unknown ({esc(info.error or 'not readable')})")
    needed = gpu_fit.needed_gpu_memory_gb(info.size_bytes)
    chosen = find_workload_type(cloud, workload_type)
    on_gpu = (chosen is not None and chosen.is_gpu) or bool(rec and rec.workload_type != "CPU")
    if needed is not None and on_gpu:
        facts += f" · needs {_need(needed)} of GPU memory"
    return f'<div style="font-size:13px">{facts}</div>'


def _model_parts(cloud: str, info: ModelInfo | None, workload_type: str, rec: gpu_fit.Recommendation | None,
                 advice: Sequence[gpu_fit.Advice], chosen: bool) -> list[str]:
    if not chosen:
        return [f'<span style="color:{GREY}">Choose a model and a version.</span>']
    if info is None:
        return [f'<span style="color:{GREY}">Reading the model artifacts…</span>']
    parts = [_facts_html(cloud, info, workload_type, rec)]
    if rec is not None:
        what = f"<b>{esc(rec.workload_type)}</b>" if rec.workload_type else "<b>nothing on this cloud</b>"
        parts.append(f'<div style="font-size:13px;color:{BLUE}">★ Recommended: {what} — {esc(rec.reason)}.'
                     "</div>")
    parts += [note(item.text, item.level) for item in advice]
    return parts


def _concurrency_html(cloud: str, entity: dict) -> str:
    try:
        low, high = rules.entity_concurrency(entity)
    except (TypeError, ValueError, KeyError):
        return ""
    wt = find_workload_type(cloud, entity.get("workload_type") or "CPU")
    text = f"Concurrency {low if low == high else f'{low}–{high}'} requests"
    if wt is not None and wt.is_gpu:
        text += f" · up to {gpu_fit.replicas(high)} GPU replica(s) of {wt.gpu_count}× {wt.gpu} (concurrency ÷ 4)"
    return f'<div style="font-size:12px;color:{GREY}">{esc(text)}</div>'


def advice_html(cloud: str, entity: dict, info: ModelInfo | None, rec: gpu_fit.Recommendation | None,
                advice: Sequence[gpu_fit.Advice], unavailable: str = "") -> str:
    """What an entity editor says under its controls: the artifact facts, the recommendation, the
    advice on the chosen workload type, the concurrency it provides and the scale-to-zero caveat.
    `entity` is the editor's `served_entities[]` item."""
    chosen = bool(entity.get("entity_name") and entity.get("entity_version"))
    parts = _model_parts(cloud, info, entity.get("workload_type") or "CPU", rec, advice, chosen)
    if unavailable:
        parts.append(note(unavailable, "error"))
    parts.append(_concurrency_html(cloud, entity))
    if entity.get("scale_to_zero_enabled"):
        parts.append(note(gpu_fit.SCALE_TO_ZERO_CAVEAT, "warning"))
    return "".join(parts)


def _verdict(fit: gpu_fit.Fit) -> str:
    if fit.fits is None:
        return f'<span style="color:{GREY}">{"CPU only" if not fit.workload.is_gpu else "?"}</span>'
    if fit.fits:
        return f'<span style="color:{GREEN};font-weight:600">✔ fits</span>'
    return f'<span style="color:{RED};font-weight:600">✖ too small</span>'


def _fit_row(fit: gpu_fit.Fit, chosen: str | None, recommended: str | None) -> list[str]:
    wt = fit.workload
    name = esc(wt.name)
    if recommended == wt.name:
        name += f' <span style="color:{BLUE}" title="recommended">★</span>'
    return [
        f"<code>{name}</code>" if wt.name != chosen else f"<b><code>{name}</code></b> ◀ chosen",
        esc(wt.gpu or "–"),
        str(wt.gpu_count) if wt.is_gpu else "–",
        f"{wt.gpu_memory_gb:g} GB" if wt.is_gpu else "–",
        format_gb(fit.usable_gb) if wt.is_gpu else "–",
        _verdict(fit),
    ]


def gpu_table_title(cloud: str) -> str:
    """The title of the (collapsible) workload-type table."""
    return f"Workload types on {cloud.upper()}: GPU memory and fit"


def gpu_table_html(cloud: str, size_bytes: int | None, *, who: str = "", chosen: str | None = None,
                   recommended: str | None = None) -> str:
    """The workload types of `cloud` and whether a model of `size_bytes` fits each, for entity `who`
    (its `chosen` type highlighted, the `recommended` one starred)."""
    fits = gpu_fit.fit_table(cloud, size_bytes)
    rows = [_fit_row(fit, chosen, recommended) for fit in fits]
    styles = ["background:#ddf4ff" if fit.workload.name == chosen else "" for fit in fits]
    if size_bytes is not None:
        needed = gpu_fit.needed_gpu_memory_gb(size_bytes)
        need = _need(needed)
        sub = (f"for <b>{esc(who)}</b>: artifacts {esc(format_size(size_bytes))} → needs {need} "
               f"(× {gpu_fit.OVERHEAD_FACTOR}); usable = GPU memory − {gpu_fit.HEADROOM:.0%} headroom")
    else:
        sub = f"for <b>{esc(who)}</b>: artifact size not known yet"
    return (f'<div style="color:{GREY};font-size:12px">{sub}</div>'
            + table(["Workload type", "GPU", "GPUs", "GPU memory", "Usable", "Fits the model?"], rows, styles))
