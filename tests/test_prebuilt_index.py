"""The prebuilt index: saved beside its catalogue, memory-mapped by later starts, answering
exactly as the index built in memory; rebuilt when the catalogue changes or the folder is
damaged; edits stay in the process; safe across forks."""

import hashlib
import mmap
import multiprocessing
import os
import shutil
from datetime import UTC, datetime

import numpy as np
import pytest

from geo_index import StoreFilter, StoreIndex, load_catalogue
from geo_index.columns import SortedKeys
from geo_index.prebuilt import load_index
from tests.support.stores import hand_placed

CATALOGUE = "data/stores_helsinki.csv"
SETTINGS = {"default_timezone": "Europe/Helsinki"}


@pytest.fixture
def catalogue(tmp_path):
    path = tmp_path / "stores.csv"
    shutil.copy(CATALOGUE, path)
    return str(path)


def _files(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def _mapped(array) -> bool:
    """Whether the array's memory is a file mapping (somewhere down its chain of bases)."""
    while array is not None:
        if isinstance(array, mmap.mmap):
            return True
        array = getattr(array, "base", None)
    return False


def _queries(index, n=150, seed=3):
    rng = np.random.default_rng(seed)
    lat, lon = index.column("lat"), index.column("lon")
    pick = rng.integers(0, index.size, n)
    return np.column_stack([lat[pick] + rng.normal(0, 0.01, n), lon[pick] + rng.normal(0, 0.02, n)])


def _answers(index, queries):
    """Every kind of query, as store ids and distances (positions may differ between builds)."""
    ids = index.column("store_id")
    cafes = StoreFilter(categories=("cafe",), min_rating=3.5).predicate(index)
    out = []
    for lat, lon in queries.tolist():
        for hits in (
            index.nearest(lat, lon, 10),
            index.nearest(lat, lon, 5, max_distance_m=800, where=cafes),
            index.within(lat, lon, 600),
        ):
            out.append((ids[hits.positions].tolist(), np.round(hits.distances_m, 6).tolist()))
        out.append(ids[index.in_bbox(lon - 0.01, lat - 0.005, lon + 0.01, lat + 0.005)].tolist())
    return out


def test_first_start_builds_and_saves_later_starts_map_the_same_index(catalogue):
    first = load_index(catalogue, **SETTINGS)
    assert first.source == "built" and first.folder.startswith(os.path.join(os.path.dirname(catalogue), ".o2o-index"))
    second = load_index(catalogue, **SETTINGS)
    assert (second.source, second.folder) == ("mapped", first.folder)
    frame, report = load_catalogue(catalogue, **SETTINGS)
    memory = StoreIndex(frame)
    mapped = second.index
    # Mapped for real: the columns are read-only views of the saved files.
    assert _mapped(mapped.column("lat")) and _mapped(mapped.column("name").data)
    assert not _mapped(memory.column("lat"))
    assert len(mapped) == len(memory) == report.rows_loaded == second.report.rows_loaded
    queries = _queries(memory)
    assert _answers(mapped, queries) == _answers(memory, queries)
    all_rows = np.arange(memory.size)
    assert mapped.records(all_rows) == memory.records(all_rows)
    at = datetime(2026, 11, 26, 12, 30, tzinfo=UTC)
    assert mapped.open_now(all_rows, at) == memory.open_now(all_rows, at)
    sid = memory.column("store_id")[17]
    assert mapped.position(sid) == memory.position(sid) == 17
    assert mapped.positions_of([sid, "no-such-store", "x" * 300]).tolist() == [17, -1, -1]
    merchant = memory.column("merchant_id")[17]
    assert mapped.stores_of(merchant).tolist() == memory.stores_of(merchant).tolist() == [17]
    assert mapped.stores_of("m-nobody").tolist() == []


def test_a_changed_catalogue_is_built_again_and_the_old_folder_removed(catalogue):
    old = load_index(catalogue, **SETTINGS)
    with open(catalogue) as f:
        lines = f.read().splitlines(keepends=True)
    with open(catalogue, "w") as f:
        f.writelines(lines[:-1])  # one store fewer
    new = load_index(catalogue, **SETTINGS)
    assert new.source == "built" and new.folder != old.folder
    assert len(new.index) == len(old.index) - 1
    assert not os.path.exists(old.folder)
    # The process that mapped the old folder still answers from it (unlinked files stay).
    assert len(old.index.nearest(60.17, 24.94, 5)) == 5
    # Other loader settings are another index too.
    other = load_index(catalogue, default_timezone="UTC")
    assert other.folder != new.folder


def test_a_damaged_folder_is_built_again(catalogue):
    folder = load_index(catalogue, **SETTINGS).folder
    with open(os.path.join(folder, "lat.npy"), "r+b") as f:
        f.truncate(200)
    again = load_index(catalogue, **SETTINGS)
    assert again.source == "built" and len(again.index.nearest(60.17, 24.94, 3)) == 3


def test_an_unwritable_cache_builds_in_memory(catalogue, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    loaded = load_index(catalogue, cache_root=str(blocker / "cache"), **SETTINGS)
    assert loaded.source == "memory" and len(loaded.index) > 900
    assert load_index(catalogue, cache_root="none", **SETTINGS).source == "memory"


def test_a_lenient_load_keeps_its_report(tmp_path):
    path = tmp_path / "stores.csv"
    good = hand_placed()
    good.loc[1, "lat"] = 123.0  # out of range: refused row
    good.to_csv(path, index=False)
    built = load_index(str(path), strict=False, **SETTINGS)
    mapped = load_index(str(path), strict=False, **SETTINGS)
    assert mapped.source == "mapped"
    assert mapped.report == built.report and not mapped.report.ok
    assert len(mapped.index) == len(good) - 1


def test_edits_stay_in_the_process_and_never_touch_the_files(catalogue):
    loaded = load_index(catalogue, **SETTINGS)
    before = _files(loaded.folder)
    index = loaded.index
    sid = index.column("store_id")[5]
    until = datetime(2030, 1, 1, tzinfo=UTC)
    changes = {
        "opening_hours": "Mo-Su 10:00-11:00",
        "price_level": 4,
        "tags": ["vegan", "terrace"],
        "phone": "+358 1",
        "closed_until": until,
        "closure_reason": "renovation",
    }
    assert index.update_attributes(sid, changes)
    rec = index.record(5)
    assert (rec["opening_hours"], rec["price_level"], rec["tags"], rec["phone"]) == (
        "Mo-Su 10:00-11:00",
        4,
        ["vegan", "terrace"],
        "+358 1",
    )
    assert (rec["closed_until"], rec["closure_reason"]) == ("2030-01-01T00:00:00Z", "renovation")
    assert index.open_now(np.array([5]), datetime(2026, 11, 26, 10, 30, tzinfo=UTC)) == [False]
    assert index.column("tags")[np.array([4, 5])][1] == ("vegan", "terrace")
    assert StoreFilter(price_levels=(4,)).predicate(index)(np.array([5])).tolist() == [True]
    assert _files(loaded.folder) == before
    fresh = load_index(catalogue, **SETTINGS).index
    assert fresh.record(5)["phone"] != "+358 1" and fresh.record(5)["closure_reason"] is None
    with pytest.raises(ValueError, match="store_id"):
        index.update_attributes(sid, {"store_id": "x"})


def _child_answers(index, queries, conn):
    conn.send(_answers(index, queries))
    conn.close()


def test_forked_workers_each_read_the_tree_file_correctly(catalogue):
    load_index(catalogue, **SETTINGS)
    index = load_index(catalogue, **SETTINGS).index
    queries = _queries(index, n=400)
    expected = _answers(index, queries)  # the parent has the tree open before it forks
    ctx = multiprocessing.get_context("fork")
    pipes, procs = [], []
    for _ in range(3):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child_answers, args=(index, queries, child))
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    # A child that read another process's pages crashes or answers wrong: never hang on it.
    results = [p.recv() if p.poll(60) else "no answer" for p in pipes]
    for proc in procs:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    assert all(r == expected for r in results)
    assert _answers(index, queries) == expected  # and the parent still does after the forks


def test_sorted_keys_find_exact_values_only():
    keys, codes = SortedKeys.build(["b", "a", "ä", "ab", "a"])
    assert [keys[int(c)] for c in codes] == ["b", "a", "ä", "ab", "a"]
    assert keys.find(["a", "ab", "ä", "abc", "", "b\0", "zzzz"]).tolist()[:3] == [0, 1, 3]
    assert keys.find(["abc", "", "b\0", "zzzz"]).tolist() == [-1, -1, -1, -1]
    assert [keys.find_one(v) for v in ("a", "ä", "abc", "b\0")] == [0, 3, -1, -1]


@pytest.mark.parametrize("n", [1, 5, 17, 300, 5000])
def test_the_packed_tree_finds_what_a_scan_finds(n):
    """The mapped index's tree against a brute-force scan: k nearest (with and without a
    distance cap) and every point in a box, on random points with repeated positions."""
    from geo_index.geodesy import to_unit_xyz
    from geo_index.packed_tree import PackedTree, pack

    rng = np.random.default_rng(n)
    lat, lon = rng.uniform(-90, 90, n), rng.uniform(-180, 180, n)
    lat[: n // 5], lon[: n // 5] = lat[0], lon[0]  # a fifth of them on one spot
    xyz = to_unit_xyz(lat, lon)
    tree = PackedTree(pack(xyz))
    for _ in range(100):
        q = (xyz[rng.integers(n)] + rng.normal(0, 0.02, 3))[None]
        d2 = ((xyz - q) ** 2).sum(1)
        k = int(rng.integers(1, 40))
        found, _ = tree.nearest_v(q, q, num_results=k)
        assert np.allclose(np.sort(d2[found]), np.sort(d2)[:k]) and len(set(found.tolist())) == len(found)
        cap = float(rng.uniform(0.001, 0.1))
        capped, _ = tree.nearest_v(q, q, num_results=k, max_dists=np.array([cap]))
        want = np.sort(d2)[:k]
        assert np.allclose(np.sort(d2[capped]), want[want <= cap * cap])
        lo, hi = q - rng.uniform(0, 0.1), q + rng.uniform(0, 0.1)
        boxed, _ = tree.intersection_v(lo, hi)
        assert sorted(boxed.tolist()) == np.flatnonzero(((xyz >= lo) & (xyz <= hi)).all(1)).tolist()
