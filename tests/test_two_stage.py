"""The two-stage ranker learns a planted signal, loses it when the signal is shuffled, and
is trained only on the earlier part of TRAIN."""

from functools import partial

import numpy as np
import pandas as pd
import pytest

from recommender.compare import compare
from recommender.sources import FEATURES
from recommender.splits import rows_at, validation
from recommender.training import TrainConfig
from recommender.two_stage import Lessons
from recommender.window import Window

MODELS = ("popularity", "user_knn", "served")


def towns(shuffled: bool, seed: int = 0):
    """Six towns 50 km apart, 12 stores each. Users live in one town and visit stores there
    (train, then test later); a few stores are popular with everyone. Shuffled: users visit
    stores anywhere, so neither place nor neighbours say anything."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(6):
        for s in range(12):
            rows.append(
                {
                    "store_id": f"t{t}s{s}",
                    "lat": 60.0 + 0.45 * t + 0.002 * (s % 4),
                    "lon": 25.0 + 0.004 * (s // 4),
                    "category": f"c{s % 3}",
                }
            )
    stores = pd.DataFrame(rows)
    train, test = [], []
    for u in range(240):
        town = u % 6
        pool = [f"t{town}s{s}" for s in range(12)]
        if shuffled:
            pool = list(rng.choice(stores["store_id"], 12, replace=False))
        visits = rng.choice(pool, 8, replace=False)
        for day, s in enumerate(visits[:6], start=1):
            train.append((f"u{u}", s, 1.0, f"2026-01-{day:02d}"))
        train.append((f"u{u}", "t0s0", 1.0, "2026-01-01"))  # the popular store, everyone's
        test += [(f"u{u}", s) for s in visits[6:]]
    return (
        stores,
        pd.DataFrame(train, columns=["user_id", "store_id", "weight", "ts"]),
        pd.DataFrame(test, columns=["user_id", "store_id"]),
    )


@pytest.fixture(scope="module")
def planted():
    return compare(*towns(False), k=5, models=MODELS, config=TrainConfig(seed=1), log=lambda m: None)["models"]


@pytest.fixture(scope="module")
def shuffled():
    return compare(*towns(True), k=5, models=MODELS, config=TrainConfig(seed=1), log=lambda m: None)["models"]


def test_the_ranker_learns_the_planted_signal(planted):
    assert planted["served"]["ndcg"] > 0.3
    assert planted["served"]["ndcg"] > 2 * planted["popularity"]["ndcg"]
    # It is the mean of one model per tree size, every one of them in the served booster.
    assert set(planted["served"]["rounds"]) == {"7", "15", "31"}
    assert planted["served"]["trees"] == sum(planted["served"]["rounds"].values())


def test_the_ranker_fails_when_the_signal_is_shuffled(planted, shuffled):
    assert shuffled["served"]["ndcg"] < 0.5 * planted["served"]["ndcg"]
    assert shuffled["served"]["ndcg"] < 0.15  # 10 test stores among ~65 unseen: chance is about 0.08


def test_the_ranker_learns_only_from_the_earlier_part_of_train():
    stores, train, _test = towns(False)
    users = sorted(set(train["user_id"]))
    uidx = {u: i for i, u in enumerate(users)}
    items = {s: i for i, s in enumerate(stores["store_id"])}
    # A return visit on the last day: a later visit to a known store is a label too.
    first = train.groupby("user_id").head(1).assign(ts="2026-01-09")
    rows = pd.concat([train, first], ignore_index=True)
    split = validation(rows_at(rows, items), uidx, items, TrainConfig(seed=1))
    # The sources see only the earlier visits of each user; every later visit is after them.
    last_fit = split.fit_rows.groupby("user_id")["ts"].max()
    first_val = rows.loc[~rows.index.isin(split.fit_rows.index)].groupby("user_id")["ts"].min()
    assert (first_val >= last_fit.reindex(first_val.index)).all()
    window = Window.of(split.fit_rows, uidx, items)
    assert (window.x != split.fit_m).nnz == 0
    # The return visits are labels of the served ranker and not of the "new" protocol.
    for u, s in zip(first["user_id"], first["store_id"]):
        assert split.val_m[uidx[u], items[s]] == 1 and split.fit_m[uidx[u], items[s]] == 1
        assert split.val_new[uidx[u], items[s]] == 0


def test_served_features_for_one_user_equal_the_evaluation_s():
    """The serving path (one user, a few stores, sparse) and the evaluation path (dense
    blocks) give the same features, so what is measured is what is served."""
    from recommender.served import fit_second_stage

    stores, train, _test = towns(False)
    items = {s: i for i, s in enumerate(stores["store_id"])}
    rows = rows_at(train, items)
    uidx = {u: i for i, u in enumerate(sorted(set(rows["user_id"])))}
    stage = fit_second_stage(stores, rows, uidx, items, TrainConfig(seed=1), log=lambda m: None, lightfm=False)
    src = stage.sources
    rng = np.random.default_rng(0)
    for u in rng.choice(len(uidx), 5, replace=False):
        cand = np.sort(rng.choice(len(items), 20, replace=False))
        blocks = src.blocks(np.array([u]))
        offline = src.pair_features(
            np.full(len(cand), u), cand, {name: np.asarray(b)[0, cand] for name, b in blocks.items()}
        )
        h = src._home[u]  # offline, the request point is the user's most visited store
        online = stage.features(
            list(uidx)[u], [list(items)[c] for c in cand], None, src.stores.lat[h], src.stores.lon[h]
        )
        np.testing.assert_allclose(online, offline, rtol=1e-5, atol=1e-3)  # NaNs in the same places
    # The ranker learned repeat visits: a user's own stores are candidates and some are labels.
    feats, target = stage.lessons.feats, stage.lessons.target
    assert target[feats[:, FEATURES.index("visits")] > 0].sum() > 0


@pytest.mark.slow  # starts a second Python process
def test_lightfm_fits_in_a_second_process_give_the_same_evaluation():
    models = ("popularity", "lightfm_cf", "lightfm_blend", "served")
    run = partial(compare, *towns(False), k=5, models=models, config=TrainConfig(seed=1), log=lambda m: None)
    serial, parallel = run(parallel=False)["models"], run(parallel=True)["models"]
    assert {n: m["ndcg"] for n, m in serial.items()} == {n: m["ndcg"] for n, m in parallel.items()}


def test_past_its_budget_the_ranker_learns_from_a_sample_and_serves_everyone(monkeypatch):
    """Above ``RANKER_USERS`` validation users, a seeded sample of them tunes and teaches
    (linear cost); the served sources still hold neighbours for every user."""
    from recommender import served

    monkeypatch.setattr(served, "RANKER_USERS", 50)
    stores, train, _test = towns(False)
    items = {s: i for i, s in enumerate(stores["store_id"])}
    rows = rows_at(train, items)
    uidx = {u: i for i, u in enumerate(sorted(set(rows["user_id"])))}
    stage = served.fit_second_stage(stores, rows, uidx, items, TrainConfig(seed=1), log=lambda m: None, lightfm=False)
    latest = stage.lessons.cut == 0
    assert 0 < latest.sum() <= 50
    learned = np.diff(stage.fit_sources.models["user_knn"].sim_.indptr) > 0
    assert 0 < learned.sum() <= 50
    assert (np.diff(stage.sources.models["user_knn"].sim_.indptr) > 0).all()  # all 240 users served


def _peaked_visits_table(seed: int = 0):
    """A training table whose labels peak at 2 visits: a non-monotone pull on ``visits``."""
    rng = np.random.default_rng(seed)
    groups = np.full(300, 20)
    n = int(groups.sum())
    feats = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
    visits = rng.integers(0, 7, n)
    feats[:, FEATURES.index("visits")] = visits
    target = ((visits == 2) | (rng.random(n) < 0.03)).astype(np.int32)
    return feats, target, groups


def _visit_response(ranker, feats) -> np.ndarray:
    """Scores of each row with its visits set to 0..6 (rows x 7)."""
    out = []
    for v in range(7):
        f = feats.copy()
        f[:, FEATURES.index("visits")] = v
        out.append(ranker.predict(f))
    return np.column_stack(out)


def test_more_visits_never_lower_a_score(monkeypatch):
    from recommender import two_stage

    feats, target, groups = _peaked_visits_table()
    probe = feats[:200]
    ranker = two_stage.TwoStageRanker(seed=0).fit(Lessons.of(feats, target, groups), log=lambda m: None)
    assert (np.diff(_visit_response(ranker, probe), axis=1) >= -1e-12).all()
    # The same data without the constraint: the ranker follows the peak at 2 visits.
    monkeypatch.setattr(two_stage, "MONOTONE", {})
    free = two_stage.TwoStageRanker(seed=0).fit(Lessons.of(feats, target, groups), log=lambda m: None)
    response = _visit_response(free, probe)
    assert (response[:, 2] > response[:, 6]).mean() > 0.9


def test_the_ranker_learns_from_every_user_after_the_held_out_fifth_chose_its_rounds():
    """Early stopping holds a fifth of the users out; the served trees are then boosted on
    all of them: each tree's root saw the bagged share (0.8) of every row, not of four fifths."""
    from recommender import two_stage

    feats, target, groups = _peaked_visits_table()
    ranker = two_stage.TwoStageRanker(seed=0).fit(Lessons.of(feats, target, groups), log=lambda m: None)
    trees = ranker.booster_.trees_to_dataframe()
    roots = trees[trees["node_depth"] == 1]
    assert len(roots) == sum(ranker.rounds_.values())
    share = roots["count"].to_numpy() / len(feats)
    assert share.min() > 0.75, share  # bagging 0.8 of all rows; 0.8 of four fifths would be ~0.64


def test_the_sizes_boosted_side_by_side_on_shared_datasets_equal_each_boosted_alone():
    """The sizes share one binned Dataset per table and boost on two threads at once; the
    served trees equal those of each size boosted alone, on a Dataset of its own, for the
    rounds the fit chose."""
    import lightgbm as lgb

    from recommender import two_stage

    feats, target, groups = _peaked_visits_table()
    ranker = two_stage.TwoStageRanker(seed=0).fit(Lessons.of(feats, target, groups), log=lambda m: None)
    x = pd.DataFrame(feats[:, two_stage._columns(ranker.feature_names_)], columns=ranker.feature_names_)
    alone = [
        lgb.train(ranker._params(leaves), lgb.Dataset(x, target, group=groups), num_boost_round=rounds)
        for leaves, rounds in ranker.rounds_.items()
    ]
    trees = ranker.booster_.model_to_string().split("end of trees")[0]
    assert trees == two_stage.average_boosters(alone).model_to_string().split("end of trees")[0]


def test_each_size_is_refitted_for_the_rounds_its_own_stopping_chose():
    """Six tasks on two workers, the stops finishing out of order (the slowest first in the
    queue): each refit gets its own size's rounds, a stop at round 0 refits for one."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from recommender.two_stage import _stopped_then_refitted

    called = []
    lock = threading.Lock()

    def stop(seconds, best):
        time.sleep(seconds)
        return SimpleNamespace(best_iteration=best)

    def refit(leaves, rounds):
        with lock:
            called.append(leaves)
        return f"{leaves} leaves x {rounds}"

    with ThreadPoolExecutor(max_workers=2) as pool:
        got = _stopped_then_refitted(
            pool, {7: partial(stop, 0.6, 40), 15: partial(stop, 0.02, 0), 31: partial(stop, 0.1, 12)}, refit
        )
    assert got == {7: (40, "7 leaves x 40"), 15: (1, "15 leaves x 1"), 31: (12, "31 leaves x 12")}
    assert called == [15, 31, 7]  # each refit queued as its size stopped


def test_earlier_cuts_teach_the_ranker_from_earlier_windows_only():
    """Small data: validation's split is made again on its own earlier part, and each cut's
    lists see only that cut's earlier visits. Known answer: the ``visits`` of a list (every
    past store of the user is a candidate) add up to the user's visits in that cut's window,
    made here by splitting by hand; its labels are no more than the stores after the cut."""
    from recommender import served
    from recommender.training import split_per_user

    stores, train, _test = towns(False)
    items = {s: i for i, s in enumerate(stores["store_id"])}
    rows = rows_at(train, items)
    uidx = {u: i for i, u in enumerate(sorted(set(rows["user_id"])))}
    cfg = TrainConfig(seed=1)
    stage = served.fit_second_stage(stores, rows, uidx, items, cfg, log=lambda m: None, lightfm=False)
    lessons = stage.lessons
    assert set(lessons.cut) == set(range(served.MAX_CUTS))
    visits = lessons.feats[:, FEATURES.index("visits")]
    starts = np.concatenate([[0], np.cumsum(lessons.groups)])
    names = list(uidx)
    earlier = rows
    for cut in range(served.MAX_CUTS):
        earlier, later = split_per_user(earlier, cfg.validation_fraction, cfg.seed)
        seen = earlier.groupby("user_id").size()
        after = later.groupby("user_id")["store_id"].nunique()
        lists = np.flatnonzero(lessons.cut == cut)
        assert len(lists) > 100
        for i in lists:
            user = names[lessons.users[i]]
            span = slice(starts[i], starts[i + 1])
            assert np.nansum(visits[span]) == seen[user], (cut, user)
            assert 1 <= lessons.target[span].sum() <= after[user]


def test_a_large_table_learns_from_the_latest_cut_alone(monkeypatch):
    """Another cut is added only while the table has room for one as large as the last."""
    from recommender import served

    stores, train, _test = towns(False)
    items = {s: i for i, s in enumerate(stores["store_id"])}
    rows = rows_at(train, items)
    uidx = {u: i for i, u in enumerate(sorted(set(rows["user_id"])))}
    fit = partial(served.fit_second_stage, stores, rows, uidx, items, TrainConfig(seed=1), log=lambda m: None)
    one = fit(lightfm=False).lessons
    latest = int((one.cut == 0).sum())
    rows_latest = int(one.groups[one.cut == 0].sum())
    monkeypatch.setattr(served, "LESSON_ROWS", 2 * rows_latest - 1)
    alone = fit(lightfm=False).lessons
    assert (alone.cut == 0).all() and len(alone.groups) == latest
    monkeypatch.setattr(served, "LESSON_ROWS", 2 * rows_latest)
    assert set(fit(lightfm=False).lessons.cut) == {0, 1}
