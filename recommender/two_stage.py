"""The served ranker: candidates from several sources, re-ranked by LightGBM lambdarank.

Stage one (``recommender.sources``) proposes each source's best ``per_source`` stores and,
because O2O lives on return visits, the user's own stores. Stage two scores every
candidate with a gradient-boosted ranker over the features of ``sources.FEATURES``.

It is trained the way it is used: the interactions are split per user in time, the sources
see only the earlier part, and the labels are the stores of the later part, known ones
included (the next visits). Where that leaves the ranker few lessons, earlier cuts of each
user's history add more (``served.fit_second_stage``; ``Lessons`` holds them all).

The ranker is the mean of boosted models with trees of ``LEAVES`` sizes, each with as many
rounds as early stopping on a held-out fifth of those users chose, then refitted on all of
them (+2.2 % NDCG@10 on Helsinki's ``new``, up to +6 % on a co-visitation world, NYC the
same within its noise; docs/recommender.md). No one size suits every deployment: 200 users overfit
31-leaf trees within ten rounds, and a larger city may need them. Picking one size on the
held-out users was tried: their verdicts are closer than their noise, and the pick moved
with the seed. The mean of the three is the best or within noise of the best size on every
set measured, and steadier (docs/recommender.md). It is written as one LightGBM model
(``average_boosters``), so serving, explanations and artifacts see one booster.

The round cap is a serving budget shared by the sizes, not a fitted constant: 127 trees
score 200 candidates of the heaviest user in 0.22-0.28 ms at p99, and with the features
that is 0.6-0.93 ms (docs/benchmarks.md); the cap's 200 would add ~0.1 ms.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .compiled_trees import CompiledTrees
from .evaluation import top_k
from .sources import CANDIDATE_SOURCES, FEATURES, Sources

_CHUNK = 128
#: Leaves per tree of the averaged models; see the module docstring.
LEAVES = (7, 15, 31)
#: Features whose rise never lowers a score, all else equal: a store the user went to more
#: often (in count and in share; rank 1 is the most visited) is no less likely to be gone
#: to again. A prior of the domain, not a fitted constant; see docs/recommender.md.
MONOTONE = {"visits": 1, "visit_share": 1, "visit_rank": -1}
#: Feature groups for the ablation and for explanations: a group's columns start with a prefix.
FEATURE_GROUPS = {
    "lightfm": ("lightfm",),
    "neighbourhood": ("user_knn", "item_knn", "rp3beta"),
    "place": ("density_", "nearest_past_m", "point_m"),
    "popularity": ("popularity",),
    "rating": ("rating",),
    "category": ("category_share",),
    "repeat": ("visits", "visit_share", "visit_rank", "days_since", "due", "category_days_since", "category_due"),
    "activity": ("user_stores",),
}
LightfmFn = Callable[[np.ndarray], np.ndarray]  # user rows -> dense users x stores


def group_of(feature: str) -> str:
    return next(g for g, prefixes in FEATURE_GROUPS.items() if feature.startswith(prefixes))


class TwoStageRanker:
    """Stage two; ``fit`` on sources and later-window labels, ``score`` dense like any ranker."""

    def __init__(self, per_source: int = 100, seed: int = 0, max_rounds: int = 200, drop: tuple[str, ...] = ()):
        self.per_source = per_source
        self.seed = seed
        self.max_rounds = max_rounds
        self.drop = drop  # FEATURE_GROUPS left out (the ablation); candidates still come from every source

    # ---------------------------------------------------------------- training
    def lessons(self, sources: Sources, labels: sp.csr_matrix, lightfm: LightfmFn | None = None, cut: int = 0):
        """The lists of the users with labels, as seen from one cut of their histories
        (``sources`` from before it, ``labels`` after it); reusable across ablations."""
        users = np.flatnonzero(np.diff(labels.indptr) > 0)
        feats, target, groups = [], [], []
        for chunk in _chunks(users):
            f, (r, c) = self._chunk_features(sources, chunk, lightfm)
            feats.append(f)
            target.append((np.asarray(labels[chunk[r], c]).ravel() > 0).astype(np.int32))
            groups.append(np.bincount(r, minlength=len(chunk)))
        g = np.concatenate(groups) if groups else np.zeros(0, np.int64)
        f = np.vstack(feats) if feats else np.zeros((0, len(FEATURES)), np.float32)
        t = np.concatenate(target) if target else np.zeros(0, np.int32)
        # Users without a labelled candidate teach a lambdarank nothing.
        has_pos = np.bincount(np.repeat(np.arange(len(g)), g), weights=t, minlength=len(g)) > 0
        keep = np.repeat(has_pos, g)
        return Lessons(f[keep], t[keep], g[has_pos], users[has_pos], np.full(int(has_pos.sum()), cut))

    def fit(self, lessons: Lessons, log=print) -> TwoStageRanker:
        import lightgbm as lgb

        latest = np.flatnonzero(lessons.cut == 0)
        if len(latest) < 2:
            raise ValueError("too few users with a later visit among their candidates to train the ranker")
        dropped = tuple(p for g in self.drop for p in FEATURE_GROUPS[g])
        self.feature_names_ = [c for c in FEATURES if not (dropped and c.startswith(dropped))]
        x = pd.DataFrame(lessons.feats[:, _columns(self.feature_names_)], columns=self.feature_names_)
        # A fifth of the users is held out with every list they have: the verdict is on users
        # the stopped trees never saw, and on small data each held user's earlier lists
        # make it less noisy.
        draw = np.random.default_rng(self.seed).random(len(latest)) < 0.2
        draw[0], draw[-1] = False, True  # both sides non-empty
        held = np.isin(lessons.users, lessons.users[latest[draw]])
        started = time.perf_counter()

        # Each table is binned once and shared by the three sizes. LightGBM's binning of a
        # million rows costs seconds, as much as several rounds of boosting; through the
        # sklearn wrapper every fit (three stopped, three refitted) binned its own copy.
        # The held-out fifth chooses each size's rounds; the trees then learn them from every
        # user, as LightFM's epochs are chosen on validation and refitted on all the data.
        with ThreadPoolExecutor(max_workers=2) as pool:  # LightGBM lets go of the GIL while it boosts
            every = pool.submit(self._dataset, (x, lessons.target, lessons.groups))
            fit_part = self._dataset(lessons.part(x, ~held))
            held_part = self._dataset(lessons.part(x, held), reference=fit_part)
            whole = every.result()
            boosters = _stopped_then_refitted(
                pool,
                {leaves: partial(self._stopped, leaves, fit_part, held_part) for leaves in LEAVES},
                lambda leaves, rounds: lgb.train(self._params(leaves), whole, num_boost_round=rounds),
            )
        self.rounds_ = {leaves: rounds for leaves, (rounds, _) in boosters.items()}
        self.booster_ = average_boosters([boosters[leaves][1] for leaves in LEAVES])
        log(
            f"[ranker] {len(lessons.groups)} lists of {len(np.unique(lessons.users))} users "
            f"from {int(lessons.cut.max()) + 1} cuts, {len(lessons.target)} candidates "
            f"({lessons.target.mean():.3%} positive); rounds by leaves per tree {self.rounds_} "
            f"({time.perf_counter() - started:.1f} s)"
        )
        return self

    def _params(self, leaves: int) -> dict:
        """One size's LightGBM settings, in LightGBM's own names (the sklearn wrapper's
        ``LGBMRanker`` with these gave the same trees)."""
        return {
            "objective": "lambdarank",
            "learning_rate": 0.1,
            "num_leaves": leaves,
            "min_data_in_leaf": 20,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "feature_fraction": 0.8,
            "monotone_constraints": [MONOTONE.get(f, 0) for f in self.feature_names_],
            "monotone_constraints_method": "advanced",
            "metric": "ndcg",
            "eval_at": [10],
            "seed": self.seed,
            "num_threads": 1,
            "verbose": -1,
        }

    def _dataset(self, part: tuple[pd.DataFrame, np.ndarray, np.ndarray], reference=None):
        """A LightGBM Dataset of (features, labels, group sizes), binned now: the binning
        takes no setting that differs between the sizes."""
        import lightgbm as lgb

        x, y, groups = part
        return lgb.Dataset(x, y, group=groups, reference=reference, params=self._params(LEAVES[0])).construct()

    def _stopped(self, leaves: int, fit_part, held_part):
        """One size's booster, stopped early on ``held_part``."""
        import lightgbm as lgb

        return lgb.train(
            self._params(leaves),
            fit_part,
            num_boost_round=max(1, self.max_rounds // len(LEAVES)),
            valid_sets=[held_part],
            callbacks=[lgb.early_stopping(20, verbose=False)],
        )

    # ----------------------------------------------------------------- scoring
    def score(self, sources: Sources, rows: np.ndarray, lightfm: LightfmFn | None = None) -> np.ndarray:
        """Dense scores: candidates by the ranker, every other store after them by popularity."""
        out = []
        for chunk in _chunks(rows):
            f, (r, c) = self._chunk_features(sources, chunk, lightfm)
            dense = np.broadcast_to(sources.window.popularity - 1e6, (len(chunk), len(sources.window.popularity)))
            dense = np.array(dense, dtype=np.float64)
            if len(f):
                dense[r, c] = self.predict(f)
            out.append(dense)
        return np.vstack(out) if out else np.zeros((0, sources.window.x.shape[1]))

    def predict(self, feats: np.ndarray) -> np.ndarray:
        """Scores of ``pair_features`` rows (all ``FEATURES`` columns; the model picks its own):
        ``Booster.predict``'s, from the compiled trees."""
        if getattr(self, "_compiled_from", None) is not self.booster_:
            self._compiled = CompiledTrees(self.booster_, _columns(self.feature_names_))
            self._compiled_from = self.booster_
        return self._compiled.predict(feats)

    def contributions(self, feats: np.ndarray) -> list[dict[str, float]]:
        """Per row, each feature group's share of the score (LightGBM's SHAP values), plus ``base``."""
        x = feats[:, _columns(self.feature_names_)].astype(np.float64)
        raw = np.asarray(self.booster_.predict(x, pred_contrib=True, num_threads=1))
        out = []
        for row in np.atleast_2d(raw):
            parts: dict[str, float] = {}
            for name, v in zip(self.feature_names_, row[:-1]):
                g = group_of(name)
                parts[g] = parts.get(g, 0.0) + float(v)
            parts["base"] = float(row[-1])
            out.append(parts)
        return out

    def _chunk_features(self, sources: Sources, chunk: np.ndarray, lightfm: LightfmFn | None):
        blocks = sources.blocks(chunk)
        if lightfm is not None:
            blocks["lightfm"] = np.asarray(lightfm(chunk), dtype=np.float32)
        r, c = self._candidates(blocks, chunk, sources.window.x)
        scores = {name: np.asarray(b)[r, c] for name, b in blocks.items()}
        return sources.pair_features(chunk[r], c, scores), (r, c)

    def _candidates(self, blocks, chunk, known: sp.csr_matrix):
        """(row in chunk, item) pairs: each source's best unseen stores and the user's own, united."""
        seen = known[chunk]
        seen_r = np.repeat(np.arange(len(chunk)), np.diff(seen.indptr))
        picked = np.zeros((len(chunk), known.shape[1]), dtype=bool)
        picked[seen_r, seen.indices] = True
        for name in CANDIDATE_SOURCES:
            if name not in blocks:
                continue
            s = np.array(blocks[name], dtype=np.float32, copy=True)
            s[seen_r, seen.indices] = -np.inf
            top = top_k(s, self.per_source)
            got = np.take_along_axis(s, top, axis=1)
            # Every source but LightFM scores most stores 0: those are no candidates.
            ok = np.isfinite(got) if name == "lightfm" else got > 0.0
            r = np.repeat(np.arange(len(chunk))[:, None], top.shape[1], axis=1)
            picked[r[ok], top[ok]] = True
        return np.nonzero(picked)


def _stopped_then_refitted(pool, stop: dict[int, Callable], refit: Callable) -> dict:
    """Per size, (rounds, refitted booster): ``stop[size]()`` early-stopped, then
    ``refit(size, rounds)``, as six tasks on ``pool``, each refit queued when its size
    stops. A size stopped and refitted in one task left a core idle: the two cores' shares
    were one size against two, 51 s against 69 s on the bundled orders (the 7-leaf trees
    take the most rounds); as six tasks the other core takes the first refit that is ready.
    """
    pending = {pool.submit(fn): leaves for leaves, fn in stop.items()}
    rounds, refits = {}, {}
    while pending:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            leaves = pending.pop(future)
            rounds[leaves] = max(1, future.result().best_iteration)
            refits[leaves] = pool.submit(refit, leaves, rounds[leaves])
    return {leaves: (rounds[leaves], refits[leaves].result()) for leaves in stop}


@dataclass
class Lessons:
    """The ranker's training table: per list (one user seen from one cut of their history)
    its candidates' features and labels, lists one after the other."""

    feats: np.ndarray  # candidates x FEATURES
    target: np.ndarray  # 1 where the user went to the candidate after the cut
    groups: np.ndarray  # candidates per list
    users: np.ndarray  # per list, its user
    cut: np.ndarray  # per list: 0 the latest cut (validation's), 1 the one before it, ...

    @classmethod
    def of(cls, feats, target, groups) -> Lessons:
        """One list per user, all from the latest cut (tests and hand-made tables)."""
        n = len(groups)
        return cls(feats, target, np.asarray(groups), np.arange(n), np.zeros(n, np.int64))

    def __add__(self, other: Lessons) -> Lessons:
        return Lessons(*(np.concatenate([a, b]) for a, b in zip(self._arrays(), other._arrays())))

    def _arrays(self):
        return self.feats, self.target, self.groups, self.users, self.cut

    def part(self, x: pd.DataFrame, lists: np.ndarray):
        """(features, labels, group sizes) of the chosen ``lists``, for LightGBM."""
        rows = np.repeat(lists, self.groups)
        return x[rows], self.target[rows], self.groups[lists]


def average_boosters(boosters: list):
    """One LightGBM booster whose raw score is the mean of ``boosters``' raw scores.

    The parts must share their features and have one output and no initial score (a
    lambdarank model's raw score is the sum of its trees' leaves). LightGBM has no public
    merge, so this writes its text format: every part's trees side by side, each leaf value
    (and node value) divided by the number of parts. SHAP values are linear in the leaf
    values, so the merged model's are the mean of the parts' as well.
    """
    import lightgbm as lgb

    if len(boosters) == 1:
        return boosters[0]
    n = len(boosters)
    heads, trees = [], []
    for b in boosters:
        text = b.model_to_string()
        head, rest = text.split("\nTree=0\n", 1)
        body, _tail = rest.split("\nend of trees\n", 1)
        heads.append([ln for ln in head.splitlines() if not ln.startswith("tree_sizes=")])
        trees += ("Tree=0\n" + body + "\n").split("\n\n\nTree=")  # blocks; the first keeps its "Tree="
    if any(h != heads[0] for h in heads):
        raise ValueError("the boosters differ in features or objective; only like models average")
    blocks = []
    for i, block in enumerate(trees):
        lines = block.split("\n")
        lines[0] = f"Tree={i}"
        for j, line in enumerate(lines):
            key, _, values = line.partition("=")
            if key in ("leaf_value", "internal_value"):
                lines[j] = key + "=" + " ".join(format(float(v) / n, ".17g") for v in values.split())
        blocks.append("\n".join(lines).rstrip("\n") + "\n\n\n")
    sizes = " ".join(str(len(bl.encode())) for bl in blocks)
    text = "\n".join(heads[0]) + f"\ntree_sizes={sizes}\n\n" + "".join(blocks) + "end of trees\n"
    return lgb.Booster(model_str=text)


def _columns(names) -> list[int]:
    return [FEATURES.index(n) for n in names]


def _chunks(rows: np.ndarray):
    for start in range(0, len(rows), _CHUNK):
        yield rows[start : start + _CHUNK]
