"""Command-line entry points, called through main([...]) as a user would run them."""

import numpy as np
import pandas as pd
import pytest

from geo_index import StoreIndex, load_catalogue
from geo_index.synthetic import synthetic_catalogue
from scripts.data import import_osm, make_synthetic


def test_import_osm_from_the_bundled_extract(tmp_path, capsys):
    out = tmp_path / "hel.csv"
    assert import_osm.main(["--out", str(out)]) == 0
    frame, report = load_catalogue(out, strict=True, default_timezone="Europe/Helsinki")
    assert report.ok and 850 <= len(frame) <= 1000
    assert {"restaurant", "cafe", "bar", "pub", "fast_food", "clothes"} <= set(frame["category"])
    assert frame["opening_hours"].notna().mean() > 0.4
    assert frame["lat"].between(60.1, 60.3).all() and frame["lon"].between(24.8, 25.1).all()
    # Everything left out is said, with its reason.
    err = capsys.readouterr().err
    assert "dropped: no name" in err and "is not OSM syntax" in err
    # The committed catalogue is what the importer produces.
    committed = pd.read_csv("data/stores_helsinki.csv", dtype=str, keep_default_na=False)
    fresh = pd.read_csv(out, dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(committed, fresh)


@pytest.mark.slow  # builds and queries a 5,000-store catalogue
def test_make_synthetic_is_seeded_and_clustered(tmp_path):
    out = tmp_path / "syn.parquet"
    assert make_synthetic.main(["--n", "5000", "--seed", "3", "--out", str(out)]) == 0
    frame, report = load_catalogue(out)
    assert report.ok and len(frame) == 5000
    again = synthetic_catalogue(5000, seed=3)
    assert list(again["store_id"]) == list(frame["store_id"])
    assert (again["lat"].round(6) == frame["lat"]).all()
    # Clustered like cities: 5,000 points spread evenly over the sphere would sit
    # from their nearest neighbour (Poisson: ~150 km); around cities, the median is ~15 km.
    index = StoreIndex(frame)
    nn = [index.nearest(la, lo, 2).distances_m[1] for la, lo in zip(frame["lat"][:500], frame["lon"][:500])]
    assert np.median(nn) < 30_000


def test_migrate_keys_tags_old_store_day_rollups(redis_url, capsys):
    """Rollups written before the store hash tags keep their figures under the new names."""
    import redis

    from app.storage import keys
    from scripts import migrate_keys

    r = redis.Redis.from_url(redis_url)
    old_sd = keys.legacy_store_day("sd", "osm-n1", "2026-11-20")
    r.hset(old_sd, mapping={"imp": 5, "ev:click": 2})
    r.expire(old_sd, 1000)
    r.pfadd(keys.legacy_store_day("uv", "osm-n1", "2026-11-20", "all"), "a", "b")
    r.hset(keys.legacy_store_day("sd", "osm-n2", "2026-11-20"), "imp", 3)
    r.hset(keys.sd("osm-n2", "2026-11-20"), "imp", 4)  # already started by the new code: merged
    r.pfadd(keys.uv("osm-n2", "2026-11-20"), "c")
    r.pfadd(keys.legacy_store_day("uv", "osm-n2", "2026-11-20", "all"), "c", "d")

    assert migrate_keys.main(["--redis-url", redis_url]) == 0
    assert capsys.readouterr().out.startswith("2 renamed, 2 merged")
    assert r.hgetall(keys.sd("osm-n1", "2026-11-20")) == {b"imp": b"5", b"ev:click": b"2"}
    assert 900 < r.ttl(keys.sd("osm-n1", "2026-11-20")) <= 1000
    assert r.pfcount(keys.uv("osm-n1", "2026-11-20")) == 2
    assert int(r.hget(keys.sd("osm-n2", "2026-11-20"), "imp")) == 7
    assert r.pfcount(keys.uv("osm-n2", "2026-11-20")) == 2
    left = [k for f in keys.LEGACY_TAILS for k in r.keys(keys.legacy_store_day(f, "*").rstrip(":"))]
    assert not left  # nothing under the old names
    assert migrate_keys.main(["--redis-url", redis_url]) == 0  # idempotent
    assert capsys.readouterr().out.strip().endswith("0 renamed, 0 merged into keys the service had started")


def test_generated_behaviour_ends_on_the_utc_date_by_default(tmp_path, monkeypatch):
    """Without --start the span ends on the UTC clock's date (not the machine's local one):
    every order and review lies before that clock's now."""
    import datetime as dt

    from scripts.data import generate_behaviour

    now = dt.datetime(2026, 1, 10, 23, 30, tzinfo=dt.UTC)

    class Clock(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return now if tz is not None else now.replace(tzinfo=None)

    monkeypatch.setattr(generate_behaviour, "datetime", Clock, raising=False)
    assert generate_behaviour.main(["--users", "40", "--days", "3", "--out", str(tmp_path)]) == 0
    for name in ("orders", "reviews"):
        ts = pd.to_datetime(pd.read_csv(tmp_path / f"{name}.csv")["ts"], utc=True)
        assert ts.min() >= pd.Timestamp("2026-01-07", tz="UTC") and ts.max() < pd.Timestamp(now)


def test_community_world_is_seeded_returns_as_asked_and_users_keep_to_few_communities(tmp_path):
    from recommender.data import read_table
    from scripts.data import community_world

    def world(repeat, out):
        args = ["--users", "300", "--stores", "4000", "--communities", "8", "--repeat", str(repeat)]
        assert community_world.main([*args, "--seed", "3", "--out", str(out)]) == 0
        return pd.read_csv(out / "stores.csv"), pd.read_csv(out / "orders.csv")

    stores, orders = world(0.5, tmp_path / "a")
    again_stores, again = world(0.5, tmp_path / "b")
    pd.testing.assert_frame_equal(orders, again)
    pd.testing.assert_frame_equal(stores, again_stores)
    # What scripts.evaluate reads, strictly.
    table, _ = read_table(str(tmp_path / "a" / "stores.csv"), "stores", strict=True)
    known = set(table["store_id"])
    rows, _ = read_table(str(tmp_path / "a" / "orders.csv"), "interactions", strict=True, known_stores=known)
    assert len(table) == 4000 and len(rows) == len(orders) and rows["ts"].notna().all()

    def returns(frame):  # share of visits to a store the user had visited before
        return frame.sort_values("ts").duplicated(["user_id", "store_id"]).mean()

    _, fresh = world(0.0, tmp_path / "c")
    assert returns(orders) - returns(fresh) > 0.3  # about 0.5, less the chance repeats
    # With 8 communities (here one per category) each user's visits keep mostly to one.
    category = orders["store_id"].map(stores.set_index("store_id")["category"])
    top_share = (
        orders.assign(category=category)
        .groupby("user_id")["category"]
        .agg(lambda c: c.value_counts(normalize=True).iloc[0])
    )
    assert top_share.mean() > 0.6
