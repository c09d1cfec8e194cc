"""List the longest functions of the package (joyvasa_core/ and nodes/ by default), longest first.

The house rule is about 60 lines a function; this prints every function over ``--limit`` lines with its length, so a
change can be checked against it: ``.venv/bin/python tools/long_functions.py --limit 60``. Exit status 1 when any
function is over the limit (``--report`` only prints).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def function_lengths(root: Path) -> list[tuple[int, str]]:
    """(lines, "path:line name") of every function and method below ``root``, decorators and docstring included."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                where = f"{path.relative_to(REPO)}:{node.lineno} {node.name}"
                found.append((node.end_lineno - first + 1, where))
    return sorted(found, reverse=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", default=["joyvasa_core", "nodes"])
    parser.add_argument("--limit", type=int, default=60, help="longest allowed, in lines [60]")
    parser.add_argument("--top", type=int, default=5, help="also list this many of the longest [5]")
    parser.add_argument("--report", action="store_true", help="only print; exit 0 even when some are over")
    args = parser.parse_args(argv)
    lengths = sorted((f for folder in args.folders for f in function_lengths(REPO / folder)), reverse=True)
    over = [f for f in lengths if f[0] > args.limit]
    for n, where in lengths[: max(args.top, len(over))]:
        print(f"{n:4d}  {where}{'  (over)' if n > args.limit else ''}")
    return 1 if over and not args.report else 0


if __name__ == "__main__":
    sys.exit(main())
