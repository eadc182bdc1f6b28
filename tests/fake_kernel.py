"""A stand-in for a Jupyter kernel's display machinery, for tests of what code shows in a cell."""
from __future__ import annotations


def fake_kernel_display(monkeypatch) -> list:
    """Make `get_ipython()` look like a kernel and record every `display(...)` and handle update;
    returns the list the shown objects are appended to."""
    import IPython
    import IPython.display

    shown: list = []

    class Handle:
        def update(self, obj, **kwargs):
            shown.append(obj)

    def display(obj, **kwargs):
        shown.append(obj)
        return Handle()

    monkeypatch.setattr(IPython.display, "display", display)
    monkeypatch.setattr(IPython, "get_ipython", lambda: type("Shell", (), {"kernel": object()})())
    return shown
