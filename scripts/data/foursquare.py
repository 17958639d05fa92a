"""Convert ../shared/data/foursquare_nyc (Yang et al., via petry-2020-marc) to the evaluate format.

    python -m scripts.data.foursquare [--src ../shared/data/foursquare_nyc] [--out var/foursquare]

Writes stores.csv (one row per venue: median coordinates, most frequent category,
price_level where known, rating rescaled from 0-10 to 0-5 where known), and train.csv /
test.csv from the files' own trajectory split. train.csv has one row per check-in, as
it happened (the served ranker learns return visits from them); no weight column, so
nothing in a row tells how often the pair recurs (a weight from the pair's total count
would leak the later visits into the validation split). test.csv has one row per
(user, venue).
"""

from __future__ import annotations

import argparse
import os
import sys

import pandas as pd

DEFAULT_SRC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "foursquare_nyc")


def convert(src: str, out: str) -> dict:
    train = pd.read_csv(os.path.join(src, "specific_train.csv"))
    test = pd.read_csv(os.path.join(src, "specific_test.csv"))
    both = pd.concat([train, test])
    g = both.groupby("poi")
    price = both["price"].where(both["price"] > 0)
    rating = both["rating"].where(both["rating"] >= 0)
    stores = pd.DataFrame(
        {
            "store_id": g.size().index.astype(str),
            "lat": g["lat"].median().to_numpy(),
            "lon": g["lon"].median().to_numpy(),
            "category": g["category"]
            .agg(lambda c: c.mode().iat[0])
            .str.lower()
            .str.replace(r"[^a-z0-9]+", "_", regex=True)
            .str.strip("_")
            .to_numpy(),
            "price_level": price.groupby(both["poi"]).first().reindex(g.size().index).to_numpy(),
            "rating": (rating.groupby(both["poi"]).first().reindex(g.size().index) / 2).round(2).to_numpy(),
        }
    )
    os.makedirs(out, exist_ok=True)
    stores.to_csv(os.path.join(out, "stores.csv"), index=False)
    for name, part in (("train", train), ("test", test)):
        rows = pd.DataFrame({"user_id": "u" + part["label"].astype(str), "store_id": part["poi"].astype(str)})
        if name == "test":  # the test is which stores come next: one row per pair
            rows = rows.drop_duplicates().sort_values(["user_id", "store_id"])
        rows.to_csv(os.path.join(out, f"{name}.csv"), index=False)
    return {
        "stores": len(stores),
        "users": int(both["label"].nunique()),
        "train_rows": len(train),
        "test_rows": len(test),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default=DEFAULT_SRC)
    parser.add_argument("--out", default=os.path.join("var", "foursquare"))
    args = parser.parse_args(argv)
    if not os.path.exists(os.path.join(args.src, "specific_train.csv")):
        print(f"{args.src}: specific_train.csv not found (the shared data is not on this machine)", file=sys.stderr)
        return 2
    print(convert(args.src, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
