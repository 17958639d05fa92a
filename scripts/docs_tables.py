"""Generate the tables the docs show of the code (layout, settings), or check them.

    python -m scripts.docs_tables --write   # rewrite the marked tables in README.md and docs/
    python -m scripts.docs_tables --check   # exit 1 if a table no longer matches the code

A table sits between ``<!-- table:NAME -->`` and ``<!-- end:NAME -->``; the test suite runs
``--check``, so a table cannot drift from the tree or from ``app.config.SETTINGS``.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Folders shown in the layout table, in reading order.
LAYOUT = [
    "app",
    "app/http",
    "app/domain",
    "app/storage",
    "app/views",
    "geo_index",
    "recommender",
    "scripts",
    "scripts/data",
    "scripts/bench",
    "scripts/demo",
    "tests",
    "tests/support",
]
#: Which file holds which table.
FILES = {"layout": "README.md", "settings": "docs/operations.md"}


def _first_line(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        doc = ast.get_docstring(ast.parse(fh.read())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _module(filename: str) -> str:
    return filename.removesuffix(".py")


def layout_table() -> str:
    rows = ["| folder | what | modules |", "| --- | --- | --- |"]
    for folder in LAYOUT:
        path = os.path.join(ROOT, folder)
        names = sorted(n for n in os.listdir(path) if (n.endswith(".py") and n != "__init__.py") or n.endswith(".sh"))
        what = _first_line(os.path.join(path, "__init__.py")).replace("|", "\\|")
        rows.append(f"| `{folder}/` | {what} | {', '.join(f'`{_module(n)}`' for n in names)} |")
    return "\n".join(rows)


def _show(default) -> str:
    from app.config import ROOT as APP_ROOT

    if default is None:
        return "unset"
    if isinstance(default, bool):
        return "1" if default else "0"
    if isinstance(default, str) and default.startswith(APP_ROOT):
        return "`" + os.path.relpath(default, APP_ROOT) + "`"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return f"`{default}`" if isinstance(default, str) else str(default)


def settings_table() -> str:
    from app.config import SETTINGS

    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, default, meaning in SETTINGS:
        shown = "OpenStreetMap contributors (HTML)" if name == "TILE_ATTRIBUTION" else _show(default)
        rows.append(f"| `O2O_{name}` | {shown} | {meaning} |")
    return "\n".join(rows)


TABLES = {"layout": layout_table, "settings": settings_table}


def _replace(text: str, name: str, table: str) -> str:
    pattern = re.compile(rf"(<!-- table:{name} -->\n)(?:.*?\n)?(<!-- end:{name} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"no <!-- table:{name} --> ... <!-- end:{name} --> block in {FILES[name]}")
    return pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(2), text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the tables in place")
    parser.add_argument("--check", action="store_true", help="exit 1 when a table differs from the code")
    args = parser.parse_args(argv)
    stale = []
    for name, make in TABLES.items():
        path = os.path.join(ROOT, FILES[name])
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        fresh = _replace(text, name, make())
        if fresh != text:
            stale.append(FILES[name])
            if args.write:
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(fresh)
        if not args.write and not args.check:
            print(make() + "\n")
    if args.check and stale:
        print(f"stale tables in {', '.join(stale)}: run python -m scripts.docs_tables --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
