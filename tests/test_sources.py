"""The pieces the served ranker is built from, each against a slow, obvious reference."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.metrics.pairwise import haversine_distances

from recommender.geo import EARTH_RADIUS_M, pairwise_m
from recommender.sources import FEATURES, Sources, StoreTable, _weighted_sum_at, near_matrix, shrunk_rating
from recommender.window import Window


def test_distances_equal_sklearn_s_haversine_including_the_antimeridian():
    """Within a centimetre: the matrix form goes through chords."""
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-80, 80, (30, 2)), rng.uniform(-80, 80, (40, 2))
    b[0] = a[0]
    b[1] = [a[1, 0], a[1, 1] + (180 if a[1, 1] < 0 else -180)]
    ref = haversine_distances(np.radians(a), np.radians(b)) * EARTH_RADIUS_M
    np.testing.assert_allclose(pairwise_m(a[:, 0], a[:, 1], b[:, 0], b[:, 1]), ref, rtol=1e-9, atol=0.01)
    assert pairwise_m([0.0], [179.9995], [0.0], [-179.9995])[0, 0] == pytest.approx(111.2, abs=0.1)


def _haversine_m(lat_a, lon_a, lat_b, lon_b) -> np.ndarray:
    a, b = np.column_stack([lat_a, lon_a]), np.column_stack([lat_b, lon_b])
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    return haversine_distances(np.radians(a), np.radians(b)) * EARTH_RADIUS_M


def test_weighted_sums_equal_scipy_s_product_by_rows_and_by_columns():
    """Either way of reading the matrix gives ``weights @ m[rows]`` at the items: few rows
    and many items read the rows, many rows and few items the columns (the same matrix as
    CSC), and each of the two kernels holds on its own."""
    from recommender import kernels

    rng = np.random.default_rng(1)
    m = sp.random(50, 300, density=0.05, format="csr", random_state=2, dtype=np.float32)
    c = m.tocsc()
    for n_rows, n_items in ((3, 60), (40, 5)):
        rows = rng.choice(50, n_rows, replace=False)
        weights = rng.random(n_rows).astype(np.float32)
        items = rng.choice(300, n_items)  # unsorted, with repeats: a request's candidates as they come
        ref = np.asarray((sp.csr_matrix(weights[None, :]) @ m[rows]).todense()).ravel()[items]
        assert (ref > 0).sum() >= 2
        by_rows, by_cols = np.diff(m.indptr)[rows].sum(), np.diff(c.indptr)[items].sum()
        assert (by_rows < by_cols) == (n_rows == 3)  # each way is taken once
        np.testing.assert_allclose(_weighted_sum_at(m, c, rows, weights, items), ref, rtol=1e-5, atol=1e-7)
        args = (rows.astype(np.int64), weights, items.astype(np.int64))
        np.testing.assert_allclose(kernels.weighted_rows_at(m.indptr, m.indices, m.data, *args), ref, rtol=1e-5)
        np.testing.assert_allclose(kernels._weighted_cols_at(c.indptr, c.indices, c.data, *args), ref, rtol=1e-5)
        assert len(_weighted_sum_at(m, c, rows, weights, items[:0])) == 0
    items = rng.choice(300, 60)
    assert len(np.unique(items)) < len(items) and (np.diff(items) < 0).any()
    # A repeated row counts twice.
    rows, weights = np.array([4, 9, 4], np.int64), np.array([0.5, 1.0, 0.25], np.float32)
    ref = np.asarray((sp.csr_matrix(weights[None, :]) @ m[rows]).todense()).ravel()[items]
    got = kernels._weighted_cols_at(c.indptr, c.indices, c.data, rows, weights, items.astype(np.int64))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)
    assert (ref > 0).sum() > 3


def test_history_features_equal_a_pair_by_pair_reference():
    """The compiled per-pair loop against the definitions, written out one pair at a time."""
    rng = np.random.default_rng(4)
    n_users, n_stores = 30, 60
    stores = pd.DataFrame(
        {
            "store_id": [f"s{i}" for i in range(n_stores)],
            "lat": 60.17 + rng.normal(0, 0.02, n_stores),
            "lon": 24.94 + rng.normal(0, 0.04, n_stores),
            "category": rng.choice(["cafe", "bar", "shop"], n_stores),
        }
    )
    n = 400
    rows = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in rng.integers(0, n_users - 3, n)],  # the last three never went anywhere
            "store_id": [f"s{i}" for i in rng.integers(0, 12, n)],  # few stores: many returns
            "ts": pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(rng.uniform(0, 60, n), unit="D"),
        }
    )
    uidx, items = {f"u{i}": i for i in range(n_users)}, {f"s{i}": i for i in range(n_stores)}
    window = Window.of(rows, uidx, items)
    table = StoreTable.of(stores)
    src = Sources.fit(window, table)
    users = np.r_[rng.integers(-1, n_users, 300), -1, n_users - 1]
    pairs_items = rng.integers(0, n_stores, len(users))
    got = src.pair_features(users, pairs_items, {})
    col = {name: got[:, j] for j, name in enumerate(FEATURES)}
    visits = window.visits.toarray()
    # Days on each user's own clock: 1 + days from the pair's last visit to the user's last visit.
    last = rows.assign(u=rows["user_id"].map(uidx), i=rows["store_id"].map(items))
    latest_pair = last.groupby(["u", "i"])["ts"].max()
    latest_user = last.groupby("u")["ts"].max()
    days = np.zeros((n_users, n_stores))
    for (u, i), t in latest_pair.items():
        days[u, i] = 1 + (latest_user[u] - t).total_seconds() / 86400
    interval = {}
    for c in range(table.category.max() + 1):
        of = table.category == c
        k = window.gap_count[of].sum()
        interval[c] = np.expm1(window.gap_log_sum[of].sum() / k) if k else np.nan
    for j, (u, i) in enumerate(zip(users, pairs_items)):
        past = np.flatnonzero(visits[u] > 0) if u >= 0 else np.zeros(0, int)
        # The haversine, not ``pairwise_m``: its 2 - 2 a.b loses ~0.1 m to cancellation.
        d = _haversine_m(table.lat[past], table.lon[past], table.lat[[i]], table.lon[[i]])[:, 0]
        for scale in (300, 1000, 3000):
            assert col[f"density_{scale}"][j] == pytest.approx(np.exp(-0.5 * (d / scale) ** 2).sum(), abs=1e-6)
        if len(past):
            assert col["nearest_past_m"][j] == pytest.approx(d.min(), abs=0.01)
            assert col["category_share"][j] == pytest.approx(np.mean(table.category[past] == table.category[i]))
        else:
            assert np.isnan(col["nearest_past_m"][j]) and col["category_share"][j] == 0
        count = visits[u, i] if u >= 0 else 0
        assert col["visits"][j] == count
        assert col["user_stores"][j] == len(past)
        if count:
            assert col["visit_share"][j] == pytest.approx(count / visits[u].sum())
            assert col["visit_rank"][j] == 1 + np.sum(visits[u] > count)
            assert col["days_since"][j] == pytest.approx(days[u, i], rel=1e-5)
            assert col["due"][j] == pytest.approx(days[u, i] / interval[table.category[i]], nan_ok=True)
        else:
            assert col["visit_share"][j] == 0
            assert np.isnan(col["visit_rank"][j]) and np.isnan(col["days_since"][j]) and np.isnan(col["due"][j])
        same = np.flatnonzero((visits[u] > 0) & (table.category == table.category[i])) if u >= 0 else []
        if len(same):
            assert col["category_days_since"][j] == pytest.approx(days[u, same].min(), rel=1e-5)
            due = days[u, same].min() / interval[table.category[i]]
            assert col["category_due"][j] == pytest.approx(due, rel=1e-5, nan_ok=True)
        else:
            assert np.isnan(col["category_days_since"][j]) and np.isnan(col["category_due"][j])
    assert (col["visits"] > 1).sum() > 10  # the draw hit returns, not only unseen stores
    # Stores the user never went to, in a category the user went to: the category's own recency.
    assert ((col["visits"] == 0) & np.isfinite(col["category_days_since"])).sum() > 10


def test_neighbourhood_features_are_each_user_s_mean_not_sum_offline_and_served():
    """user-KNN: the neighbours' visits weighted by similarity over the similarities' sum;
    item-KNN and RP3beta: the summed similarities over the user's past stores. The same
    from the offline blocks and from the serving row; 0 for a user with no history."""
    rng = np.random.default_rng(8)
    n_users, n_stores = 25, 40
    ids = [f"s{i}" for i in range(n_stores)]
    stores = pd.DataFrame({"store_id": ids, "lat": np.full(n_stores, 60.17), "lon": np.full(n_stores, 24.9)})
    rows = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in rng.integers(0, n_users - 1, 300)],  # the last user never went anywhere
            "store_id": [f"s{i}" for i in (rng.zipf(1.6, 300) % n_stores)],
        }
    )
    window = Window.of(rows, {f"u{i}": i for i in range(n_users)}, {f"s{i}": i for i in range(n_stores)})
    src = Sources.fit(window, StoreTable.of(stores))
    x = window.x.toarray()
    sim = src.models["user_knn"].sim_.toarray()
    item_sim, walk = src.models["item_knn"].sim_.toarray(), src.models["rp3beta"].w_.toarray()
    users = np.arange(n_users)
    blocks = src.blocks(users)
    for u in range(n_users):
        items = np.arange(n_stores)
        past = x[u] > 0
        want = {
            "user_knn": sim[u] @ x / sim[u].sum() if sim[u].sum() else np.zeros(n_stores),
            "item_knn": past @ item_sim / max(past.sum(), 1),
            "rp3beta": past @ walk / max(past.sum(), 1),
        }
        offline = src.pair_features(np.full(n_stores, u), items, {m: blocks[m][u] for m in want})
        served = src.pair_features(np.full(n_stores, u), items, src.row(u, items))
        for name, ref in want.items():
            np.testing.assert_allclose(offline[:, FEATURES.index(name)], ref, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(served[:, FEATURES.index(name)], ref, rtol=1e-5, atol=1e-7)
    assert (x.sum(axis=1) > 3).sum() > 5 and not x[-1].any()  # long histories, and one empty one
    assert np.count_nonzero(blocks["user_knn"]) > 100  # the sums were not all zero
    cold = src.pair_features(np.full(3, -1), np.arange(3), src.row(-1, np.arange(3)))
    assert (cold[:, [FEATURES.index(m) for m in ("user_knn", "item_knn", "rp3beta")]] == 0).all()


def test_densities_are_powers_of_the_widest_kernel_for_any_whole_ratio():
    """The kernel raises the widest width's value to (W/w)^2 instead of calling exp per
    width, with the powers compiled in: other whole ratios than the served widths' 100 and 9
    must hold too (here 144 and 16), out to the 12-width cut and past it, and a width with
    no whole ratio is refused."""
    from recommender import kernels

    assert kernels.kernel_powers((250.0, 750.0, 3000.0)) == (144, 16, 1)
    assert kernels.kernel_powers(kernels.DENSITY_SCALES_M) == kernels._POWERS == (100, 9, 1)
    with pytest.raises(ValueError, match="whole number"):
        kernels.kernel_powers((400.0, 1000.0, 3000.0))
    z2 = np.r_[np.linspace(0.0, 3.0, 301), 1.43, 1.45, 8.9, 9.1, 143.9]  # squared widest-widths
    for k in (1, 9, 16, 100, 144):
        for z in z2:
            want = np.exp(-0.5 * z * k) if z * k < 144 else 0.0
            got = kernels._kernel_power(np.exp(-0.5 * z), k, z)
            assert got == pytest.approx(want, rel=1e-12, abs=0.0), (k, z)
    assert (z2 * 100 < 144).any() and (z2 * 100 > 144).any()  # both sides of the narrowest cut


def test_vectorised_densities_equal_exp_of_the_chords_and_skip_a_store_without_a_place():
    """The densities' loop uses its own exp (so that it vectorises) and reorders its sums:
    equal to numpy's exp over the same squared chords within 1e-12, for stores from 0 m to
    past the widest cut. A past store with NaN coordinates adds nothing (and reads no table
    out of bounds)."""
    from recommender import kernels
    from recommender.geo import unit_vectors

    rng = np.random.default_rng(11)
    lat = 60.17 + np.r_[0.0, rng.uniform(-0.4, 0.4, 70)]  # up to ~45 km: past 12 widest widths
    lon = 24.94 + np.r_[0.0, rng.uniform(-0.8, 0.8, 70)]
    unit = unit_vectors(lat, lon)
    past = np.ascontiguousarray(unit[:64].T)
    cats = rng.integers(0, 3, 71).astype(np.int32)
    chord2, kern, dens = np.empty(64), np.empty(64), np.empty(3)
    scale = EARTH_RADIUS_M**2 / np.array(kernels.DENSITY_SCALES_M) ** 2
    for it in (0, 5, 70):
        nearest, same = kernels._history_kernels(unit[it], cats[it], past, cats[:64], 64, chord2, kern, dens)
        c2 = ((unit[:64] - unit[it]) ** 2).sum(axis=1)
        for s, k in enumerate(scale):
            want = np.where(c2 * k < 144, np.exp(-0.5 * c2 * k), 0.0).sum()
            assert dens[s] == pytest.approx(want, rel=1e-12)
        assert nearest == pytest.approx(c2.min(), rel=1e-12, abs=0.0)
        assert same == (cats[:64] == cats[it]).sum()
        assert (nearest == 0.0) == (it < 64)  # a past store is 0 m from itself
    assert (c2 * scale[-1] > 144).any()  # the widest width's cut was crossed
    past[:, 3] = np.nan
    kernels._history_kernels(unit[5], cats[5], past, cats[:64], 64, chord2, kern, dens)
    c2 = np.delete(((unit[:64] - unit[5]) ** 2).sum(axis=1), 3)
    assert dens[-1] == pytest.approx(np.where(c2 * scale[-1] < 144, np.exp(-0.5 * c2 * scale[-1]), 0).sum(), rel=1e-12)


def test_history_features_read_a_user_s_most_visited_stores_only(monkeypatch):
    """A budget of 3 past stores: the two visited once (one of them beside the candidate)
    drop out of the densities and the nearest past store; ``user_stores`` still counts 5,
    and a tie in visits keeps the lower item."""
    import recommender.sources as sources

    monkeypatch.setattr(sources, "HISTORY_STORES", 3)
    lat = np.array([60.20, 60.21, 60.22, 60.23, 60.10, 60.10005])
    stores = pd.DataFrame({"store_id": list("abcdef"), "lat": lat, "lon": np.full(6, 24.9), "category": list("xxxxxy")})
    visits = {"a": 5, "b": 4, "c": 2, "d": 2, "e": 1}  # c and d tie: c (the lower item) stays
    rows = pd.DataFrame({"user_id": "u", "store_id": [s for s, k in visits.items() for _ in range(k)]})
    src = Sources.fit(Window.of(rows, {"u": 0}, {s: i for i, s in enumerate("abcdef")}), StoreTable.of(stores))
    got = dict(zip(FEATURES, src.pair_features(np.array([0]), np.array([5]), {})[0]))
    kept = pairwise_m(lat[:3], np.full(3, 24.9), lat[5:], [24.9])[:, 0]
    assert got["nearest_past_m"] == pytest.approx(kept.min(), abs=0.01)  # not e's 5.6 m
    assert got["density_3000"] == pytest.approx(np.exp(-0.5 * (kept / 3000) ** 2).sum(), rel=1e-5)  # e would add ~1
    assert got["user_stores"] == 5 and got["category_share"] == 0


def test_point_distance_is_the_haversine_from_each_pair_s_own_point():
    """Served, a request's one point for every pair; offline, each user's most visited store
    (none: unknown). Two points in turn, so a kernel that kept the first point's vector fails."""
    rng = np.random.default_rng(5)
    stores = pd.DataFrame(
        {"store_id": ["a", "b", "c", "d"], "lat": [60.17, 60.18, 60.30, -33.9], "lon": [24.94, 24.95, 25.10, 151.2]}
    )
    rows = pd.DataFrame({"user_id": ["u", "u", "u", "w", "w"], "store_id": ["b", "b", "a", "c", "a"]})
    src = Sources.fit(
        Window.of(rows, {"u": 0, "v": 1, "w": 2}, {s: i for i, s in enumerate(stores["store_id"])}),
        StoreTable.of(stores),
    )
    # The stand-in point's store: u's b (2 visits); none for v and user -1; w's tie to the lower a.
    assert src.home(np.array([0, 1, 2, -1])).tolist() == [1, -1, 0, -1]
    items = rng.integers(0, 4, 40)
    plat = np.r_[np.full(20, 60.2), np.full(19, 51.5), np.nan]
    plon = np.r_[np.full(20, 24.9), np.full(19, -0.1), 24.9]
    got = src.pair_features(np.zeros(40, np.int64), items, {}, (plat, plon))[:, FEATURES.index("point_m")]
    ref = haversine_distances(np.radians(np.c_[plat, plon][:39]), np.radians(stores[["lat", "lon"]].to_numpy()))
    np.testing.assert_allclose(got[:39], ref[np.arange(39), items[:39]] * EARTH_RADIUS_M, rtol=1e-6, atol=0.01)
    assert np.isnan(got[39])
    offline = src.pair_features(np.array([0, 1, -1]), np.array([2, 2, 2]), {})[:, FEATURES.index("point_m")]
    assert offline[0] == pytest.approx(pairwise_m([60.18], [24.95], [60.30], [25.10])[0, 0], rel=1e-6)  # from b
    assert np.isnan(offline[1]) and np.isnan(offline[2])


def test_near_matrix_is_the_gaussian_kernel_within_its_cut():
    lat = np.array([60.0, 60.0, 60.0, 60.1])
    lon = np.array([25.0, 25.0 + 1000 / 55_600, 25.0 + 2600 / 55_600, 25.0])  # ~0, 1 km, 2.6 km, 11 km
    near = near_matrix(lat, lon).toarray()
    d = pairwise_m(lat, lon, lat, lon)
    assert near[0, 0] == pytest.approx(1.0)
    assert near[0, 1] == pytest.approx(np.exp(-0.5 * (d[0, 1] / 1000) ** 2), rel=1e-5)
    assert near[0, 2] == 0 and near[0, 3] == 0  # beyond 2.5 widths


def test_popularity_decays_with_a_quarter_of_the_window_s_span():
    rows = pd.DataFrame(
        {
            "user_id": ["a", "b", "c"],
            "store_id": ["old", "old", "new"],
            "ts": pd.to_datetime(["2026-01-01", "2026-01-01", "2026-02-10"], utc=True),
        }
    )
    w = Window.of(rows, {"a": 0, "b": 1, "c": 2}, {"old": 0, "new": 1})
    # Span 40 days, half-life 10: two 40-day-old orders weigh 2/16; one today weighs 1.
    np.testing.assert_allclose(w.popularity, np.log1p([2 / 16, 1.0]), rtol=1e-6)


def test_recency_runs_on_each_user_s_own_clock():
    """Days since a visit count back from the user's own latest visit, not the window's end:
    a user whose history stops early (a per-user time split cuts each user apart) is not a
    month away from everything."""
    day = pd.Timestamp("2026-01-01", tz="UTC")
    rows = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "c"],
            "store_id": ["old", "new", "old", "new"],
            "ts": [day, day + pd.Timedelta(days=40), day, day + pd.Timedelta(days=40)],
        }
    )
    w = Window.of(rows, {"a": 0, "b": 1, "c": 2}, {"old": 0, "new": 1})
    assert w.days_since[0, 0] == pytest.approx(41) and w.days_since[0, 1] == pytest.approx(1)
    assert w.days_since[1, 0] == pytest.approx(1)  # b's only visit is b's latest: 41 on the window's clock
    assert w.days_since[2, 1] == pytest.approx(1)


def test_ratings_are_shrunk_toward_the_mean_by_the_median_count():
    got = shrunk_rating(pd.Series([5.0, 4.0, np.nan]), pd.Series([2, 200, 0]))
    mean = (5 * 2 + 4 * 200) / 202
    m = 101.0  # the median count of the rated stores
    assert got[0] == pytest.approx((2 * 5 + m * mean) / (2 + m), rel=1e-6)
    assert got[1] == pytest.approx((200 * 4 + m * mean) / (200 + m), rel=1e-6)
    assert np.isnan(got[2])
    assert abs(got[0] - mean) < abs(got[0] - 5.0)  # two 5-star reviews stay near the mean


def test_return_gaps_give_each_category_its_usual_interval_and_a_due_feature():
    day = pd.Timestamp("2026-03-01", tz="UTC")
    rows = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "a", "b", "b"],
            "store_id": ["cafe1", "cafe1", "cafe1", "shop", "shop", "cafe2"],
            "ts": [
                *(day + pd.Timedelta(days=d) for d in (0, 4, 10, 21)),
                day,
                day + pd.Timedelta(days=20),
            ],
        }
    )
    items = {"cafe1": 0, "cafe2": 1, "shop": 2}
    w = Window.of(rows, {"a": 0, "b": 1}, items)
    np.testing.assert_allclose(w.gap_count, [2, 0, 0])
    np.testing.assert_allclose(w.gap_log_sum, [np.log(5) + np.log(7), 0, 0], rtol=1e-6)
    stores = pd.DataFrame(
        {
            "store_id": list(items),
            "lat": [60.0, 60.001, 60.002],
            "lon": [25.0] * 3,
            "category": ["cafe", "cafe", "shop"],
        }
    )
    src = Sources.fit(w, StoreTable.of(stores))
    feats = src.pair_features(np.array([0, 1, 0]), np.array([0, 1, 1]), {})
    col = {name: feats[:, j] for j, name in enumerate(FEATURES)}
    interval = np.sqrt(35) - 1  # the geometric mean of 1 + 4 and 1 + 6 days, minus one
    # User a was last at cafe1 on day 10 and last anywhere on day 21: 12 days since, with the +1.
    assert col["due"][0] == pytest.approx(12 / interval, rel=1e-5)
    assert col["due"][1] == pytest.approx(1 / interval, rel=1e-5)  # b's latest visit was cafe2
    # a never went to cafe2, but to its category 12 days before a's latest visit.
    assert np.isnan(col["due"][2])
    assert col["category_days_since"][2] == pytest.approx(12) and col["category_due"][2] == pytest.approx(12 / interval)


def test_the_nearest_anchor_is_the_haversine_minimum_over_a_row_s_anchors():
    from recommender.geo import nearest_m

    rng = np.random.default_rng(4)
    lat, lon = rng.uniform(60.1, 60.3, 50), rng.uniform(24.8, 25.1, 50)
    alat, alon = rng.uniform(60.1, 60.3, (6, 3)), rng.uniform(24.8, 25.1, (6, 3))
    alat[1, 2] = alon[1, 2] = np.nan  # two anchors
    alat[2] = alon[2] = np.nan  # none
    alat[3, 0], alon[3, 0] = lat[7], lon[7]  # on a store
    got = nearest_m(alat, alon, lat, lon)
    for r in range(6):
        have = ~np.isnan(alat[r])
        if not have.any():
            assert np.isinf(got[r]).all()
            continue
        want = _haversine_m(alat[r, have], alon[r, have], lat, lon).min(axis=0)
        np.testing.assert_allclose(got[r], want, rtol=1e-9, atol=1e-6)
    assert got[3, 7] == 0.0
