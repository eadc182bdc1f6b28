"""Telling a model's own log lines from the serving stack's: uvicorn's access and lifecycle lines,
and MLflow's warnings. Pure: no I/O. `%serve logs` shows the model's lines by default."""
from __future__ import annotations

import re

_UVICORN = re.compile(r"^(INFO|WARNING|DEBUG):\s{2,}")  # uvicorn's own prefix: "INFO:     ..."
_ACCESS = re.compile(r'^\S*\s*(INFO:\s+)?[\d.:\[\]a-f]+ - "(GET|POST|PUT|HEAD|DELETE|OPTIONS|PATCH) \S+ HTTP/[\d.]+" \d{3}')
_MLFLOW_LOG = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} (WARNING|INFO|DEBUG) mlflow[\w.]*:")
_PY_WARNING = re.compile(r"^\S+\.py:\d+: \w*Warning: ")


def is_server_line(line: str) -> bool:
    """Whether `line` comes from the serving stack (uvicorn, MLflow's warnings), not the model."""
    return bool(_UVICORN.match(line) or _ACCESS.match(line) or _MLFLOW_LOG.match(line)
                or (_PY_WARNING.match(line) and "mlflow" in line))


def model_lines(text: str) -> tuple[str, int]:
    """(the model's own lines, how many serving-stack lines were left out). A Python warning's
    source line (`  warnings.warn(`) goes with it."""
    kept: list[str] = []
    hidden = 0
    dropping = False
    for line in text.splitlines():
        if is_server_line(line):
            hidden += 1
            dropping = bool(_PY_WARNING.match(line))
            continue
        if dropping and line.startswith((" ", "\t")):
            hidden += 1
            continue
        dropping = False
        kept.append(line)
    return "\n".join(kept), hidden
