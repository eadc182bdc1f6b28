"""`TrafficEditor(name)`: split an endpoint's traffic with one slider per served entity.

The sliders always sum to 100: moving one rebalances the others in proportion (locked ones keep
their share; see `jupyter_serving.core.traffic_split`). The current and the new split are shown side by
side; "Apply" sends the config update from a background thread (`ServingClient.set_traffic`) and
follows it until it settles. A failed update says so and shows the split that still serves.
`%serve traffic NAME` (no split) displays it.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import ipywidgets as W
from traitlets import Int, List, Unicode

from jupyter_serving.core import traffic_split
from jupyter_serving.core.errors import NotFoundError, ServingError
from jupyter_serving.core.status import EndpointStatus, describe_entity_model
from jupyter_serving.widgets._common import (
    BOX_STYLE,
    GREY,
    entity_colors,
    esc,
    message_of,
    note,
    resolve_client,
    table,
    traffic_bar,
)


class TrafficSliders(W.VBox):
    """One 0–100 % slider per entity, kept summing to 100. `values` (list of int) follows the
    sliders (observe it for changes); `names` labels them. A lock button per entity keeps its share
    while others move."""

    values = List(Int())
    notice = Unicode("", help="why the last move was limited (a locked share), or ''")

    def __init__(self, names: Sequence[str], values: Sequence[int] | None = None,
                 info: Sequence[str] | None = None, label_width: str = "170px", **kwargs):
        self._guard = False
        self._names: list[str] = []
        self.sliders: list[W.IntSlider] = []
        self.locks: list[W.ToggleButton] = []
        self.labels: list[W.HTML] = []
        self.infos: list[W.HTML] = []
        self.label_width = label_width
        self.notice_box = W.HTML()
        super().__init__(**kwargs)
        self.set_names(names, values, info)

    @property
    def names(self) -> list[str]:
        return list(self._names)

    @property
    def split(self) -> dict[str, int]:
        return dict(zip(self._names, self.values))

    def set_names(self, names: Sequence[str], values: Sequence[int] | None = None,
                  info: Sequence[str] | None = None) -> None:
        """Relabel / resize. Without `values`: keep the shares by position when the count is the
        same, else rescale what is kept (new entities start at an even share)."""
        names = list(names)
        old = list(self.values)
        if values is None:
            if len(old) == len(names):
                values = old
            elif not old:
                values = traffic_split.even_split(len(names))
            elif len(names) > len(old):
                even = traffic_split.even_split(len(names))
                kept = traffic_split.apportion(100 - sum(even[len(old):]), old)
                values = kept + even[len(old):]
            else:
                values = traffic_split.normalize(old[:len(names)])
        values = [int(v) for v in values]
        colors = entity_colors(names)
        if len(names) != len(self.sliders):
            self.sliders, self.locks, self.labels, self.infos = [], [], [], []
            rows = []
            for _ in names:
                slider = W.IntSlider(min=0, max=100, step=1, readout=True, readout_format="d",
                                     continuous_update=True, layout=W.Layout(width="300px"))
                slider.observe(self._moved, names="value")
                lock = W.ToggleButton(value=False, icon="unlock", tooltip="Keep this share while moving others",
                                      layout=W.Layout(width="44px", padding="0"))
                lock.observe(self._lock_icon, names="value")
                name_label = W.HTML(layout=W.Layout(width=self.label_width, min_width=self.label_width))
                info_label = W.HTML(layout=W.Layout(min_width="120px"))
                self.sliders.append(slider)
                self.locks.append(lock)
                self.labels.append(name_label)
                self.infos.append(info_label)
                rows.append(W.HBox([name_label, slider, W.HTML('<span style="color:#57606a">%</span>'), lock,
                                    info_label], layout=W.Layout(align_items="center")))
            self.children = [*rows, self.notice_box]
        self._names = names
        for i, name in enumerate(names):
            self.labels[i].value = (f'<span style="display:inline-block;width:10px;height:10px;border-radius:2px;'
                                    f'background:{colors[name]};margin-right:6px"></span><b>{esc(name)}</b>')
            if info is not None:
                self.infos[i].value = f'<span style="color:{GREY};font-size:12px">{esc(info[i])}</span>'
        self._assign(values)

    def set_values(self, values: Sequence[int]) -> None:
        self._assign([int(v) for v in values])

    def _lock_icon(self, change) -> None:
        change["owner"].icon = "lock" if change["new"] else "unlock"

    def _assign(self, values: list[int]) -> None:
        self._guard = True
        try:
            for slider, v in zip(self.sliders, values):
                slider.value = v
        finally:
            self._guard = False
        self.values = list(values)

    def _moved(self, change) -> None:
        if self._guard:
            return
        index = self.sliders.index(change["owner"])
        locked = [i for i, lock in enumerate(self.locks) if lock.value and i != index]
        values = traffic_split.rebalance(self.values, index, change["new"], locked)
        self._assign(values)
        self._explain(index, change["new"], values[index], locked)

    def _explain(self, index: int, wanted: int, got: int, locked: list[int]) -> None:
        """Say why a share did not take the value asked for (the locked shares), or clear that."""
        if got == wanted or not locked:
            self.notice = ""
        else:
            held = [f"{self._names[i]} is locked at {self.values[i]} %" for i in locked]
            them = "it" if len(locked) == 1 else "them"
            self.notice = (f"{', '.join(held)}: unlock {them} to give "
                           f"{'more' if wanted > got else 'less'} than {got} % here")
        self.notice_box.value = note(self.notice, "warning") if self.notice else ""


class TrafficEditor(W.VBox):
    """Edit and apply the traffic split of endpoint `name`.

    Traits: `state` — "editing", "applying", "applied" or "failed"; `message` — what happened.
    `current` is the split that serves (as last read), `sliders.split` the new one."""

    state = Unicode("editing")
    message = Unicode("")
    pending = Int(0)

    def __init__(self, name: str, client: Any = None, **kwargs):
        self.name = name
        self.client = resolve_client(client)
        status = self.client.get(name)  # one GET: a missing endpoint fails here, as a one-line error
        self.status = status
        self.current: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self.header = W.HTML()
        self.sliders = TrafficSliders([], [])
        self.compare = W.HTML()
        self.progress = W.HTML()
        self.apply_button = W.Button(description="Apply", button_style="primary", icon="check",
                                     tooltip="Send the new split (config update)")
        self.reset_button = W.Button(description="Reset", icon="undo", tooltip="Back to the split that serves")
        self.even_button = W.Button(description="Even split", icon="balance-scale")
        self.reload_button = W.Button(description="Reload", icon="refresh", tooltip="Read the endpoint again")
        self.apply_button.on_click(lambda _: self.apply())
        self.reset_button.on_click(lambda _: self.sliders.set_values(list(self.current.values())))
        self.even_button.on_click(lambda _: self.sliders.set_values(traffic_split.even_split(len(self.current))))
        self.reload_button.on_click(lambda _: self.reload())
        self.sliders.observe(lambda _: self._edited(), names="values")
        buttons = W.HBox([self.apply_button, self.reset_button, self.even_button, self.reload_button])
        super().__init__([self.header, self.sliders, self.compare, buttons, self.progress],
                         layout=W.Layout(**BOX_STYLE), **kwargs)
        self.add_class("jupyter-serving-traffic")
        self._load(status)

    # -- state ------------------------------------------------------------------------------------
    @property
    def new_split(self) -> dict[str, int]:
        return self.sliders.split

    def set_split(self, split: dict[str, int]) -> None:
        """Set the new split programmatically (every served entity, summing to 100)."""
        missing = set(self.current) ^ set(split)
        if missing:
            raise ValueError(f"give a share for exactly these entities: {', '.join(self.current)}")
        self.sliders.set_values([int(split[k]) for k in self.current])

    def _load(self, status: EndpointStatus) -> None:
        self.status = status
        self.current = dict(status.traffic) or {n: 100 // max(1, len(status.entity_names))
                                                 for n in status.entity_names}
        info = []
        for n in self.current:
            e = status.entity(n) or {}
            info.append(f"{describe_entity_model(e)} · now {self.current[n]}%")
        self.sliders.set_names(list(self.current), list(self.current.values()), info)
        where = f"config v{status.config_version}" if status.config_version is not None else ""
        self.header.value = (f'<div style="font-size:15px"><b>Traffic split</b> · endpoint <b>{esc(self.name)}</b>'
                             f' <span style="color:{GREY}">({esc(status.state)}{", " + esc(where) if where else ""})'
                             "</span></div>")
        if status.is_updating:
            self.progress.value = note("An update is in progress: wait for it, then Reload.", "warning")
        elif status.is_stopped:
            self.progress.value = note(f"The endpoint is stopped: start it (%serve start {self.name}) to re-route.",
                                       "warning")
        elif len(self.current) < 2:
            self.progress.value = note("One served entity gets all the traffic; add an entity "
                                       f"(%serve update {self.name} ...) to split it.", "info")
        self._changed()

    def _edited(self) -> None:
        if self.state == "deleted":
            return
        if self.state in ("applied", "failed"):
            self.state = "editing"
        self._changed()

    def _changed(self) -> None:
        new = self.new_split
        colors = entity_colors(list(self.current))
        rows = []
        for n, cur in self.current.items():
            nv = new.get(n, cur)
            delta = nv - cur
            arrow = (f'<span style="color:{"#1a7f37" if delta > 0 else "#cf222e"};font-weight:600">'
                     f'{delta:+d}</span>') if delta else f'<span style="color:{GREY}">–</span>'
            rows.append([f"<b>{esc(n)}</b>", f"{cur}%", f"<b>{nv}%</b>", arrow])
        bars = (f'<div style="display:grid;grid-template-columns:70px minmax(260px,480px);gap:4px 8px;'
                f'align-items:center;margin:6px 0">'
                f'<span style="color:{GREY}">Current</span>{traffic_bar(self.current, colors)}'
                f'<span style="color:{GREY}">New</span>{traffic_bar(new, colors)}</div>')
        self.compare.value = (f'<div style="display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap">'
                              f'{table(["Entity", "Current", "New", "Change"], rows)}<div>{bars}</div></div>')
        if self.state == "deleted":
            for control in (self.apply_button, self.reset_button, self.even_button, self.reload_button,
                            *self.sliders.sliders, *self.sliders.locks):
                control.disabled = True
            return
        busy = self.state == "applying"
        blocked = self.status.is_updating or self.status.is_stopped
        self.apply_button.disabled = busy or blocked or new == self.current or len(self.current) < 2
        self.reset_button.disabled = busy or new == self.current
        self.even_button.disabled = busy or len(self.current) < 2
        self.reload_button.disabled = busy

    # -- actions ------------------------------------------------------------------------------------
    def apply(self) -> None:
        """Send the new split from a background thread; follow the update until it settles."""
        if self.state in ("applying", "deleted"):
            return
        split = self.new_split
        self.state = "applying"
        self.message = ""
        self._changed()
        self.progress.value = note(f"Applying {traffic_split.describe(split)} …", "info")
        self.pending += 1
        self._thread = threading.Thread(target=self._apply, args=(split,), daemon=True,
                                        name=f"serving-traffic-{self.name}")
        self._thread.start()

    def _progress(self, status: EndpointStatus, elapsed: float) -> None:
        pending = status.pending_config or {}
        version = pending.get("config_version") or status.config_version
        self.progress.value = note(f"Updating: config v{version} {status.config_update} · {elapsed:.0f} s", "info")

    def _apply(self, split: dict[str, int]) -> None:
        try:
            status = self.client.set_traffic(self.name, split, wait=True, on_progress=self._progress)
        except NotFoundError as err:
            self._gone(err)
        except Exception as err:  # noqa: BLE001 - shown in the widget
            self._failed(err, split)
        else:
            self._load(status)
            self.message = (f"Applied: {traffic_split.describe(status.traffic)} serves "
                            f"(config v{status.config_version}).")
            self.state = "applied"
            self.progress.value = note(self.message, "ok")
        finally:
            self._changed()
            self.pending -= 1

    def _gone(self, err: BaseException) -> None:
        """The endpoint no longer exists: this editor stays on screen, disabled, and says so."""
        self.message = (f"Endpoint '{self.name}' no longer exists ({message_of(err)}): this editor is "
                        "disabled. Create the endpoint again and run %serve traffic for a new editor.")
        self.state = "deleted"
        self.progress.value = note(self.message, "error")
        self._changed()

    def _failed(self, err: BaseException, split: dict[str, int]) -> None:
        still = None
        try:
            status = self.client.get(self.name)
            still = status.traffic
            self.status = status
        except NotFoundError as gone:
            self._gone(gone)
            return
        except ServingError:
            pass
        serving = traffic_split.describe(still if still is not None else self.current)
        self.message = f"Update failed: {message_of(err)} The previous split still serves: {serving}."
        self.state = "failed"
        if still is not None:
            self.current = dict(still)
        self.progress.value = note(self.message, "error")

    def reload(self) -> None:
        def run():
            try:
                status = self.client.get(self.name)
            except NotFoundError as err:
                self._gone(err)
            except Exception as err:  # noqa: BLE001
                self.progress.value = note(message_of(err), "error")
            else:
                self.progress.value = ""
                self.state = "editing"
                self._load(status)
            finally:
                self.pending -= 1
        self.pending += 1
        threading.Thread(target=run, daemon=True, name=f"serving-traffic-reload-{self.name}").start()

    def join(self, timeout: float | None = None) -> bool:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True


def traffic_editor(name: str, client: Any = None) -> TrafficEditor:
    """What `%serve traffic NAME` (no split) displays."""
    return TrafficEditor(name, client)
