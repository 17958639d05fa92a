"""The docs and the layer rules cannot drift from the code."""

import ast
import importlib
import os
import re

import pytest

from scripts import docs_tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", *(os.path.join("docs", n) for n in sorted(os.listdir(os.path.join(ROOT, "docs"))))]


def _read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as fh:
        return fh.read()


def test_generated_tables_match_the_code():
    assert docs_tables.main(["--check"]) == 0, "run: python -m scripts.docs_tables --write"


def test_readme_fits_on_a_screen_or_two():
    assert len(_read("README.md").splitlines()) <= 200


@pytest.mark.parametrize("doc", DOCS)
def test_every_documented_command_exists(doc):
    commands = set(re.findall(r"python -m (scripts(?:\.\w+)+)", _read(doc)))
    for module in commands:
        assert callable(getattr(importlib.import_module(module), "main", None)), f"{doc}: {module} has no main()"


def _imports(package):
    """(module path, imported top-level name or 'app.x.y') for every import in a package."""
    for folder, _dirs, files in os.walk(os.path.join(ROOT, package)):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            tree = ast.parse(_read(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    yield from ((path, a.name) for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    yield path, node.module


@pytest.mark.parametrize(
    "package,forbidden",
    [
        ("geo_index", ("flask", "redis", "recommender", "app")),
        ("recommender", ("flask", "redis", "geo_index", "app")),
        ("app/domain", ("flask", "redis", "app.storage", "app.views")),
        ("app/http", ("redis", "app.views")),
        ("app/views", ("redis",)),
    ],
)
def test_layers_import_only_what_they_may(package, forbidden):
    bad = [
        (os.path.relpath(p, ROOT), m)
        for p, m in _imports(package)
        if m.split(".")[0] in forbidden or any(m == f or m.startswith(f + ".") for f in forbidden)
    ]
    assert not bad, f"{package} may not import {forbidden}: {bad}"


def test_only_storage_keys_spells_a_redis_key():
    offenders = []
    for package in ("app", "scripts", "tests"):
        for folder, _dirs, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                path = os.path.join(folder, name)
                owner = path in (os.path.join(ROOT, "app", "storage", "keys.py"), os.path.abspath(__file__))
                if name.endswith(".py") and not owner and "o2o:v1" in _read(path):
                    offenders.append(os.path.relpath(path, ROOT))
    assert not offenders, f"key literals outside app/storage/keys.py: {offenders}"


def test_every_redis_key_family_is_in_the_keys_table():
    import inspect

    from app.storage import keys

    def family(key: str) -> str:
        """``sd`` of ``sd:s1:2026-01-01``; ``{deal}:used`` of ``{deal:x}:used`` (a cluster hash tag)."""
        tagged = re.match(r"\{([a-z_]+):[^}]*\}:([a-z_]+)", key)
        return f"{{{tagged[1]}}}:{tagged[2]}" if tagged else key.split(":")[0]

    table = {family(k) for k in re.findall(r"^``([^`]+)``", keys.__doc__, re.M)}
    made = set()
    for name, value in vars(keys).items():
        if name.startswith("_") or name == "PREFIX" or name in ("legacy_store_day", "retagged"):
            continue  # names of the layout before the hash tags, and the map to today's
        if isinstance(value, str) and value.startswith(keys.PREFIX):
            made.add(family(value[len(keys.PREFIX) :]))
        elif inspect.isfunction(value) and value.__module__ == keys.__name__:
            params = inspect.signature(value).parameters
            args = [
                ["2026-01-01", "2026-01-02"] if p == "days" else ["s1"] if p.endswith("ids") else "x" for p in params
            ]
            made.add(family(value(*args)[len(keys.PREFIX) :]))
            if "deal" in params:  # without a deal, the key takes the store's tag
                made.add(family(value(*[None if p == "deal" else "x" for p in params])[len(keys.PREFIX) :]))
    assert made == table, f"key families without a row in keys.py's table: {made - table}; rows of none: {table - made}"
