"""Write a seeded synthetic catalogue (up to 10,000,000 stores) for scale tests.

python -m scripts.data.make_synthetic --n 1000000 --out data/generated/synthetic_1m.parquet
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from geo_index.synthetic import synthetic_catalogue


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="data/generated/synthetic_1m.parquet")
    args = parser.parse_args(argv)
    if not 1 <= args.n <= 10_000_000:
        parser.error("--n must be between 1 and 10,000,000")
    t0 = time.perf_counter()
    frame = synthetic_catalogue(args.n, seed=args.seed)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    if args.out.endswith(".csv"):
        frame.assign(tags=frame["tags"].map("|".join)).to_csv(args.out, index=False)
    else:
        frame.assign(tags=frame["tags"].map("|".join)).to_parquet(args.out, index=False)
    print(f"wrote {len(frame)} stores to {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
