"""A seeded behaviour generator: users, deals, orders and reviews on top of a catalogue.

The behaviour is built so that a model has something real to learn, and so that
popularity alone cannot win the evaluation:

- each user has a home and a work place, tastes over categories (a sparse Dirichlet) and a
  preferred price level;
- they shop near where they are (home, or work on weekday office hours), with an
  exponential distance decay of about a kilometre;
- they come back to favourites, at category-specific repurchase intervals (coffee every
  few days, clothes every month or two);
- a store has a hidden quality; ratings follow quality plus how well the store fits the
  user's taste and budget;
- an active deal lifts a store's chance of being chosen, and most orders made during a
  deal redeem it.

The hidden parameters are returned separately (``Behaviour.hidden``) and are never
written where the training code reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .geo import pairwise_m

# Days between repeat purchases in a category; anything else uses DEFAULT_INTERVAL.
REPURCHASE_DAYS = {
    "cafe": 3,
    "fast_food": 6,
    "ice_cream": 7,
    "bakery": 4,
    "restaurant": 12,
    "bar": 9,
    "pub": 8,
    "supermarket": 4,
    "convenience": 3,
    "kiosk": 4,
    "hairdresser": 35,
    "clothes": 45,
    "shoes": 60,
    "jewelry": 120,
    "books": 40,
    "beauty": 30,
}
DEFAULT_INTERVAL = 30
LOYALTY = {"cafe": 0.7, "hairdresser": 0.8, "supermarket": 0.8, "restaurant": 0.45, "clothes": 0.4}
DEFAULT_LOYALTY = 0.5
_AMOUNT = {1: 9.0, 2: 18.0, 3: 35.0, 4: 70.0}
_GOOD = ["great", "friendly", "delicious", "cosy", "fast", "fresh", "recommend", "lovely", "quality"]
_BAD = ["slow", "rude", "cold", "overpriced", "dirty", "noisy", "disappointing", "bland", "crowded"]
_TOPIC = {
    "cafe": ["coffee", "cake", "latte"],
    "restaurant": ["dinner", "menu", "service"],
    "fast_food": ["burger", "fries", "quick"],
    "bar": ["drinks", "cocktails"],
    "pub": ["beer", "drinks"],
    "clothes": ["fit", "selection", "sizes"],
    "hairdresser": ["haircut", "stylist"],
}


@dataclass
class BehaviourConfig:
    n_users: int = 3000
    days: int = 120
    start: str = "2026-06-01"
    orders_per_user_month: float = 5.0
    deal_store_share: float = 0.3
    review_rate: float = 0.25
    # Walking scale: the bundled catalogue is central Helsinki, about 2 km across.
    decay_km: float = 0.3
    seed: int = 0


@dataclass
class Behaviour:
    users: pd.DataFrame
    deals: pd.DataFrame
    orders: pd.DataFrame
    reviews: pd.DataFrame
    hidden: dict = field(default_factory=dict)


def generate(stores: pd.DataFrame, config: BehaviourConfig | None = None) -> Behaviour:
    """Simulate ``config.days`` of behaviour on ``stores`` (canonical catalogue rows)."""
    cfg = config or BehaviourConfig()
    rng = np.random.default_rng(cfg.seed)
    stores = stores.reset_index(drop=True)
    world = _World(stores, cfg, rng)
    deals = world.make_deals()
    orders, reviews = [], []
    for u in range(cfg.n_users):
        o, r = world.simulate_user(u, deals)
        orders += o
        reviews += r
    users = pd.DataFrame(
        {
            "user_id": world.user_ids,
            "created_at": pd.Timestamp(cfg.start, tz="UTC")
            - pd.to_timedelta(rng.integers(0, 400, cfg.n_users), unit="D"),
        }
    )
    # A review comes 1-48 hours after its order; those past the simulated span (which ends
    # now, by default) have not been written yet. Dropped here, so the orders stay the same.
    written = [r for r in reviews if r[2] < cfg.days]  # (user, store, day, rating, text)
    return Behaviour(
        users=users,
        deals=deals.drop(columns=["_lift"]),
        orders=_frame(orders, ["user_id", "store_id", "deal_id", "ts", "amount"], world.t0),
        reviews=_frame(written, ["user_id", "store_id", "ts", "rating", "text"], world.t0),
        hidden=world.hidden(),
    )


def _frame(rows, columns, t0) -> pd.DataFrame:
    """Rows with ``ts`` in simulated days, as a frame with UTC timestamps (whole seconds)."""
    frame = pd.DataFrame(rows, columns=columns)
    frame["ts"] = t0 + pd.to_timedelta(np.round(frame["ts"].to_numpy(float) * 86400), unit="s")
    return frame.sort_values(["ts", "user_id"], ignore_index=True)


class _World:
    def __init__(self, stores: pd.DataFrame, cfg: BehaviourConfig, rng: np.random.Generator):
        self.cfg, self.rng, self.stores = cfg, rng, stores
        self._deal_days: list[tuple[np.ndarray, dict]] | None = None  # built on first use
        self.t0 = pd.Timestamp(cfg.start, tz="UTC")
        n = len(stores)
        self.cats, self.cat_of = np.unique(stores["category"].to_numpy(str), return_inverse=True)
        price = stores["price_level"].to_numpy(float) if "price_level" in stores else np.full(n, np.nan)
        self.price = np.where(np.isnan(price), 2, price).astype(int)
        rating = stores["rating"].to_numpy(float) if "rating" in stores else np.full(n, np.nan)
        z = np.where(np.isnan(rating), 0.0, (rating - np.nanmean(rating)) / (np.nanstd(rating) or 1.0))
        # Public ratings are a noisy view of the hidden quality.
        self.quality = 0.6 * z + 0.8 * rng.normal(size=n)
        self.lat, self.lon = stores["lat"].to_numpy(float), stores["lon"].to_numpy(float)
        self.user_ids = np.array([f"u{u:06d}" for u in range(cfg.n_users)], dtype=object)
        self.members = [np.flatnonzero(self.cat_of == c) for c in range(len(self.cats))]
        self.interval = np.array([REPURCHASE_DAYS.get(c, DEFAULT_INTERVAL) for c in self.cats], dtype=float)
        self.store_ids = stores["store_id"].to_numpy(object)
        self._users = self._make_users()

    def _make_users(self) -> dict:
        cfg, rng, n_users = self.cfg, self.rng, self.cfg.n_users
        # Homes and workplaces near real stores: people live and work where shops are.
        home = rng.integers(0, len(self.lat), n_users)
        work = rng.integers(0, len(self.lat), n_users)
        jitter = lambda k: rng.normal(0, 0.002, k)  # noqa: E731 - ~200 m
        share = np.bincount(self.cat_of, minlength=len(self.cats)) / len(self.cat_of)
        return {
            "home": np.column_stack([self.lat[home] + jitter(n_users), self.lon[home] + 2 * jitter(n_users)]),
            "work": np.column_stack([self.lat[work] + jitter(n_users), self.lon[work] + 2 * jitter(n_users)]),
            "taste": np.vstack([rng.dirichlet(0.1 + 2 * share) for _ in range(n_users)]),
            "price": rng.choice([1, 2, 3, 4], size=n_users, p=[0.25, 0.45, 0.22, 0.08]),
            "activity": rng.lognormal(np.log(cfg.orders_per_user_month), 0.6, n_users),
            "decay_km": cfg.decay_km * rng.lognormal(0, 0.35, n_users),
        }

    def make_deals(self) -> pd.DataFrame:
        cfg, rng = self.cfg, self.rng
        has = np.flatnonzero(rng.random(len(self.lat)) < cfg.deal_store_share)
        rows = []
        for s in has.tolist():
            for j in range(int(rng.integers(1, 4))):
                start = rng.integers(-30, cfg.days)
                length = int(rng.integers(7, 45))
                pct = int(rng.choice([10, 15, 20, 25, 30, 40, 50]))
                cat = self.cats[self.cat_of[s]]
                rows.append(
                    {
                        "deal_id": f"d-{self.stores['store_id'].iat[s]}-{j}",
                        "store_id": self.stores["store_id"].iat[s],
                        "title": f"{pct}% off at {self.stores['name'].iat[s]}"[:120],
                        "discount_pct": pct,
                        "starts_at": self.t0 + pd.Timedelta(days=int(start)),
                        "ends_at": self.t0 + pd.Timedelta(days=int(start) + length),
                        "tags": "|".join(sorted({cat, "lunch" if rng.random() < 0.3 else "all_day"})),
                        "quota": int(rng.choice([50, 100, 500, 1000])),
                        "_lift": 0.6 + pct / 40,
                    }
                )
        return pd.DataFrame(
            rows,
            columns=["deal_id", "store_id", "title", "discount_pct", "starts_at", "ends_at", "tags", "quota", "_lift"],
        )

    def simulate_user(self, u: int, deals: pd.DataFrame):
        cfg, rng, p = self.cfg, self.rng, self._users
        n_events = rng.poisson(p["activity"][u] * cfg.days / 30)
        if n_events == 0:
            return [], []
        t = self.order_times(n_events)
        base = {a: self._utility(u, p[a][u]) for a in ("home", "work")}
        deal_days = self._deal_index(deals)
        last_buy = np.full(len(self.cats), -1e9)
        favourites: dict[int, dict[int, int]] = {}
        orders, reviews = [], []
        for when in t:
            s, deal = self.next_order(u, when, base, last_buy, favourites, deal_days)
            if s < 0:
                continue
            amount = round(float(_AMOUNT[int(self.price[s])] * rng.lognormal(0, 0.35)), 2)
            orders.append((self.user_ids[u], self.store_ids[s], deal, when, amount))
            if rng.random() < cfg.review_rate:
                reviews.append(self._review(u, s, when + float(rng.uniform(1, 48)) / 24))
        return orders, reviews

    def order_times(self, n: int, after: float = 0.0) -> np.ndarray:
        """``n`` order times (simulated days) from ``after`` to the end: days in ascending
        order, each at a whole hour from 7 to 22 plus up to an hour."""
        rng = self.rng
        t = np.sort(rng.uniform(after, self.cfg.days, n))
        return np.floor(t) + rng.choice(np.arange(7, 23), n) / 24 + rng.uniform(0, 1 / 24, n)

    def next_order(self, u, when, base, last_buy, favourites, deal_days):
        """Where user ``u`` orders at ``when`` (store, deal or None; store -1: nowhere), with
        the user's ``last_buy`` per category and ``favourites`` updated. ``base``: the user's
        utility of every store from home and from work (``_utility``)."""
        weekday = (self.t0.weekday() + int(when)) % 7 < 5
        hour = (when % 1) * 24
        anchor = "work" if weekday and 9 <= hour < 17 and self.rng.random() < 0.7 else "home"
        cat = self._pick_category(u, when, last_buy)
        s, deal = self._pick_store(u, cat, when, base[anchor], favourites, deal_days)
        if s >= 0:
            self.remember(s, when, last_buy, favourites)
        return s, deal

    def remember(self, s: int, when: float, last_buy, favourites) -> None:
        """What the user keeps of an order at store ``s`` at ``when``: the category's last
        order time and the store's count among the category's favourites."""
        cat = int(self.cat_of[s])
        last_buy[cat] = when
        favourites.setdefault(cat, {})
        favourites[cat][s] = favourites[cat].get(s, 0) + 1

    def _utility(self, u: int, where) -> np.ndarray:
        p = self._users
        d_km = pairwise_m([where[0]], [where[1]], self.lat, self.lon)[0] / 1000
        price_fit = -1.0 * np.abs(self.price - p["price"][u])
        return 0.5 * self.quality + price_fit - d_km / p["decay_km"][u]

    def _pick_category(self, u: int, when: float, last_buy: np.ndarray) -> int:
        due = np.clip((when - last_buy) / self.interval, 0.05, 1.0)
        w = self._users["taste"][u] * due
        return int(self.rng.choice(len(w), p=w / w.sum()))

    def _pick_store(self, u, cat, when, base, favourites, deal_days):
        rng = self.rng
        active_lift, active_deal = self._active(when, deal_days)
        fav = favourites.get(cat)
        loyal = LOYALTY.get(self.cats[cat], DEFAULT_LOYALTY)
        if fav and rng.random() < loyal:
            ids = np.fromiter(fav.keys(), dtype=np.int64)
            w = np.fromiter(fav.values(), dtype=float) * np.exp(active_lift[ids])
            s = int(ids[rng.choice(len(ids), p=w / w.sum())])
        else:
            members = self.members[cat]
            if not len(members):
                return -1, None
            util = base[members] + active_lift[members]
            w = np.exp(util - util.max())
            s = int(members[rng.choice(len(members), p=w / w.sum())])
        deal = active_deal.get(s)
        return s, (deal if deal is not None and rng.random() < 0.8 else None)

    def _deal_index(self, deals: pd.DataFrame):
        """Per simulated day: each store's best deal lift, and which deal it is (deals run whole days)."""
        if self._deal_days is not None:
            return self._deal_days
        pos = {sid: i for i, sid in enumerate(self.store_ids)}
        start = ((deals["starts_at"] - self.t0).dt.days).to_numpy()
        end = ((deals["ends_at"] - self.t0).dt.days).to_numpy()
        store = np.array([pos[s] for s in deals["store_id"]], dtype=np.int64)
        lift, ids = deals["_lift"].to_numpy(float), deals["deal_id"].to_numpy(object)
        days = []
        for day in range(self.cfg.days + 1):
            on = (start <= day) & (day < end)
            boost = np.zeros(len(self.lat))
            np.maximum.at(boost, store[on], lift[on])
            days.append((boost, dict(zip(store[on].tolist(), ids[on].tolist()))))
        self._deal_days = days
        return days

    def _active(self, when, deal_days):
        return deal_days[int(when)]

    def _review(self, u, s, ts):
        rng, p = self.rng, self._users
        cat = self.cats[self.cat_of[s]]
        fit = p["taste"][u][self.cat_of[s]] * len(self.cats) / 4 - 0.5 * abs(int(self.price[s]) - p["price"][u])
        rating = int(np.clip(np.round(3.3 + 0.9 * self.quality[s] + 0.4 * fit + rng.normal(0, 0.7)), 1, 5))
        mood = _GOOD if rating >= 4 else (_BAD if rating <= 2 else _GOOD[:3] + _BAD[:3])
        words = list(rng.choice(mood, 2)) + list(rng.choice(_TOPIC.get(cat, [cat.replace("_", " ")]), 1))
        return (self.user_ids[u], self.store_ids[s], ts, rating, " ".join(words))

    def hidden(self) -> dict:
        p = self._users
        return {
            "store_quality": pd.DataFrame({"store_id": self.stores["store_id"], "quality": self.quality}),
            "users": pd.DataFrame(
                {
                    "user_id": self.user_ids,
                    "home_lat": p["home"][:, 0],
                    "home_lon": p["home"][:, 1],
                    "work_lat": p["work"][:, 0],
                    "work_lon": p["work"][:, 1],
                    "price": p["price"],
                    "activity": p["activity"],
                    "decay_km": p["decay_km"],
                    "top_category": self.cats[p["taste"].argmax(axis=1)],
                }
            ),
        }
