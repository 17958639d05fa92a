"""A prebuilt index beside its catalogue: built by the first start, mapped by every later one.

The first process to open a catalogue validates it, builds the index and saves it in a
folder named by the catalogue's content hash (and the loader's settings); every later
start, worker and instance on that disk memory-maps the columns and the R-tree (a packed
STR tree in arrays, ``geo_index.packed_tree``), so the OS page cache holds one copy and a
start is a hash of the file plus a few opens. Layout of ``<root>/<file>-<key16>/``::

    meta.json             format, key, rows, categories, schedules, the load report, columns
    <column>[.<part>].npy one array per numeric column or part of a text column
    tree.<part>.npy       the R-tree's arrays

A folder is written under a temporary name and renamed into place, so readers see a
whole index or none; two processes building at once both succeed and one folder wins.
Folders of the same catalogue name with an older key are removed after a new one is
saved (a process still mapping one keeps its files until it exits: POSIX unlink).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass

import numpy as np

from .catalogue import load_catalogue
from .columns import CodedText, SortedKeys, TextColumn, split_tags
from .index import IndexData, StoreIndex, index_data, memory_tree
from .packed_tree import PackedTree, pack
from .report import LoadReport, RowProblem

log = logging.getLogger(__name__)

#: Bump when the saved layout or what the loader accepts changes: old folders are then
#: never opened (their key differs) and are removed on the next save.
FORMAT = 2
CACHE_FOLDER = ".o2o-index"
# A Shapefile is several files; each is part of the content.
_SIDECARS = {".shp": (".shx", ".dbf", ".prj", ".cpg")}


@dataclass(frozen=True)
class Loaded:
    index: StoreIndex
    report: LoadReport
    source: str  # "mapped" (a saved index), "built" (and saved), "memory" (not saved)
    folder: str | None


def load_index(
    path: str,
    *,
    cache_root: str | None = None,
    strict: bool = True,
    default_timezone: str = "UTC",
    default_merchant_id: str | None = None,
) -> Loaded:
    """The index of the catalogue at ``path``: mapped from its saved folder when there is
    one, else built from the file and saved (``cache_root``: where the folders live,
    default ``.o2o-index`` beside the catalogue; ``"none"``: build in memory, save nothing).
    ``LoadError`` for a refused catalogue, as ``load_catalogue``."""
    settings = {"strict": strict, "default_timezone": default_timezone, "default_merchant_id": default_merchant_id}

    def read():
        return load_catalogue(
            path, strict=strict, default_timezone=default_timezone, default_merchant_id=default_merchant_id
        )

    if cache_root and cache_root.lower() == "none":
        frame, report = read()
        return Loaded(StoreIndex(frame), report, "memory", None)
    root = cache_root or os.path.join(os.path.dirname(os.path.abspath(path)), CACHE_FOLDER)
    key = catalogue_key(path, settings)
    folder = os.path.join(root, f"{os.path.basename(path)}-{key[:16]}")
    if os.path.exists(os.path.join(folder, "meta.json")):
        try:
            index, report = open_folder(folder, key)
            return Loaded(index, report, "mapped", folder)
        except (OSError, ValueError, KeyError) as exc:  # damaged: build it again
            log.error("prebuilt index %s unusable (%s); building it again", folder, exc)
            shutil.rmtree(folder, ignore_errors=True)
    frame, report = read()
    data = index_data(frame)
    try:
        save_folder(data, report, folder, key)
        index, report = open_folder(folder, key)
        _remove_older(root, os.path.basename(path), folder)
        return Loaded(index, report, "built", folder)
    except OSError as exc:  # e.g. a read-only data folder: serve, but each process builds its own
        log.warning("prebuilt index not saved in %s (%s): built in memory", root, exc)
        return Loaded(StoreIndex.from_data(data, memory_tree(data.columns["xyz"])), report, "memory", None)


def catalogue_key(path: str, settings: dict) -> str:
    """sha256 over the layout version, the loader's settings and the catalogue's bytes."""
    digest = hashlib.sha256()
    header = {"format": FORMAT, "settings": settings}
    digest.update(json.dumps(header, sort_keys=True).encode())
    stem, suffix = os.path.splitext(path)
    for part in (path, *(stem + ext for ext in _SIDECARS.get(suffix.lower(), ()))):
        if part == path or os.path.exists(part):
            digest.update(os.path.basename(part).encode())
            with open(part, "rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


# ------------------------------------------------------------------------------ saving
def save_folder(data: IndexData, report: LoadReport, folder: str, key: str) -> None:
    """Write ``data`` and its tree to ``folder`` (atomically: a temporary folder renamed)."""
    root = os.path.dirname(folder)
    os.makedirs(root, exist_ok=True)
    tmp = os.path.join(root, f".tmp-{os.path.basename(folder)}-{uuid.uuid4().hex[:8]}")
    os.makedirs(tmp)
    try:
        layout, sizes = {}, {}

        def save(name: str, parts: dict[str, np.ndarray]) -> None:
            for part, arr in parts.items():
                file = _file(name, part)
                np.save(os.path.join(tmp, file), np.ascontiguousarray(arr), allow_pickle=False)
                sizes[file] = os.path.getsize(os.path.join(tmp, file))

        for name, col in data.columns.items():
            layout[name], parts = _parts(col)
            save(name, parts)
        tree = pack(np.asarray(data.columns["xyz"]))
        save("tree", tree)
        meta = {
            "format": FORMAT,
            "key": key,
            "rows": len(data.columns["lat"]),
            "built_at": time.time(),
            "categories": data.categories,
            "schedules": data.schedules,
            "columns": layout,
            "tree": list(tree),
            "sizes": sizes,
            "report": asdict(report),
        }
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(meta, f)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not os.path.exists(os.path.join(folder, "meta.json")):
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process saved the same index first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _parts(col) -> tuple[str, dict[str, np.ndarray]]:
    if isinstance(col, np.ndarray):
        return "array", {"": col}
    if isinstance(col, TextColumn):
        return "text", col.arrays()
    if isinstance(col, CodedText) and isinstance(col.values, SortedKeys):
        return "keyed", col.arrays()
    if isinstance(col, CodedText) and isinstance(col.values, TextColumn):
        return ("coded-tags" if col.convert is split_tags else "coded"), col.arrays()
    raise TypeError(f"no saved form for {type(col).__name__}")


def _file(name: str, part: str) -> str:
    return f"{name}.{part}.npy" if part else f"{name}.npy"


def _remove_older(root: str, name: str, keep: str) -> None:
    for entry in os.listdir(root):
        full = os.path.join(root, entry)
        if full != keep and entry.startswith(f"{name}-") and os.path.isdir(full):
            shutil.rmtree(full, ignore_errors=True)


# ----------------------------------------------------------------------------- opening
def open_folder(folder: str, key: str | None = None) -> tuple[StoreIndex, LoadReport]:
    """The saved index in ``folder``, its arrays memory-mapped (``ValueError`` if damaged)."""
    with open(os.path.join(folder, "meta.json")) as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT or (key is not None and meta.get("key") != key):
        raise ValueError("saved for another catalogue or layout")
    for file, size in meta["sizes"].items():
        if os.path.getsize(os.path.join(folder, file)) != size:
            raise ValueError(f"{file} is not the size it was saved with")

    def load(name: str, part: str = "") -> np.ndarray:
        path = os.path.join(folder, _file(name, part))
        try:
            # A plain ndarray over the mapping: indexing an np.memmap subclass costs tens of
            # microseconds a call in __array_finalize__.
            return np.load(path, mmap_mode="r", allow_pickle=False).view(np.ndarray)
        except ValueError:  # an empty array cannot be mapped
            return np.load(path, allow_pickle=False)

    columns = {name: _column(kind, name, load) for name, kind in meta["columns"].items()}
    n = meta["rows"]
    if any(len(col) != n for col in columns.values()):
        raise ValueError("columns of different lengths")
    data = IndexData(columns, meta["categories"], [tuple(s) for s in meta["schedules"]])
    r = meta["report"]
    problems = [RowProblem(**p) for p in r["problems"]]
    report = LoadReport(r["file"], r["rows_read"], r["rows_loaded"], problems, r["notes"])
    tree = PackedTree({part: load("tree", part) for part in meta["tree"]})
    tree.warm_up()  # compile (or load numba's cache) now, before gunicorn forks its workers
    return StoreIndex.from_data(data, tree), report


def _column(kind: str, name: str, load):
    if kind == "array":
        return load(name)
    if kind == "text":
        return TextColumn(load(name, "offsets"), load(name, "data"))
    if kind == "keyed":
        return CodedText(load(name, "codes"), SortedKeys(load(name, "values.keys")))
    if kind in ("coded", "coded-tags"):
        values = TextColumn(load(name, "values.offsets"), load(name, "values.data"))
        return CodedText(load(name, "codes"), values, split_tags if kind == "coded-tags" else None)
    raise ValueError(f"unknown column kind {kind!r}")
