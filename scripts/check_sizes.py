"""Fail when a module of the package grows past 500 lines or a function past 60 lines.

    python scripts/check_sizes.py [--max-module 500] [--max-function 60] [PATH ...]

Counts every line of a module; a function's lines run from its `def` (decorators excluded) to its
last line, docstring included. Run by scripts/lint (CI).
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def oversized(path: Path, max_module: int, max_function: int) -> list[str]:
    text = path.read_text()
    problems = []
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    if lines > max_module:
        problems.append(f"{path.relative_to(ROOT)}: {lines} lines (max {max_module})")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > max_function:
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.name}() is {length} lines "
                                f"(max {max_function})")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=[str(ROOT / "jupyter_serving")])
    parser.add_argument("--max-module", type=int, default=500)
    parser.add_argument("--max-function", type=int, default=60)
    args = parser.parse_args()
    files = []
    for p in map(Path, args.paths):
        files += sorted(p.resolve().rglob("*.py")) if p.is_dir() else [p.resolve()]
    problems = [msg for f in files if "labextension" not in f.parts
                for msg in oversized(f, args.max_module, args.max_function)]
    for msg in problems:
        print(msg)
    print(f"{len(files)} modules checked, {len(problems)} over the limits")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
