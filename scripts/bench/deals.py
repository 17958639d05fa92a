"""Throughput of /v1/deals/recommended and the cost of impression logging.

    python -m scripts.bench.deals [--seconds 8] [--rounds 3] [--json bench-results/deals.json]

gunicorn (2 workers, --preload, 127.0.0.1) on the bundled data with the newest model and
a fresh embedded Redis. Interleaved closed-loop runs: the trivial endpoint (/livez),
recommended deals (known and anonymous users), and /v1/stores/nearby with impression
logging on and, in a second server started with O2O_IMPRESSIONS=0, off (those two back to
back, the first alternating by round). Each round starts
both servers afresh (a server's placement moves its CPU per request by up to ~15 % here).
Medians over rounds, each round's known-user ratio, and the server's CPU per request
(workers and redis-server) for every run but the second server's trivial one. To compare
two commits, ``scripts.bench.deals_ab``.
"""

from __future__ import annotations

import argparse
import os
import sys
from urllib.parse import urlencode

import numpy as np
import pandas as pd

from scripts.bench.harness import fresh_servers, medians, nearby_paths, ratios_by_round, run_load
from scripts.common import emit_json
from scripts.users import token


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="fresh servers each round (default 3)")
    args = load_arguments(parser, "--rounds", seconds=8, argv=argv)
    pts, known = bench_points()
    deals_anon = [deals_path(a, b) for a, b in pts]
    nearby = nearby_paths(pts)
    runs = {
        k: []
        for k in (
            "trivial",
            "deals_known_user",
            "deals_anonymous",
            "nearby_impressions_on",
            "trivial_b",
            "nearby_impressions_off",
        )
    }
    for round_ in range(args.rounds):
        # Fresh servers each round: one gunicorn differs from another of the same code by up
        # to ~15 % of CPU per request here (where it landed), so a median over servers.
        order = ("1", "0") if round_ % 2 == 0 else ("0", "1")
        with fresh_servers({flag: {"O2O_IMPRESSIONS": flag} for flag in order}) as servers:
            (on, pids_on, env_on), (off, pids_off, _) = servers["1"], servers["0"]
            deals_known = signed_in(known, env_on)  # tokens the server with impressions on accepts
            runs["trivial"].append(run_load(on, ["/livez"], args.seconds, args.clients, pids_on))
            runs["deals_known_user"].append(run_load(on, deals_known, args.seconds, args.clients, pids_on))
            runs["deals_anonymous"].append(run_load(on, deals_anon, args.seconds, args.clients, pids_on))
            # The two nearby runs back to back, the first alternating by round, so that neither
            # side is always the one measured after the other (the cost is their difference).
            pair = [("nearby_impressions_on", on, pids_on), ("nearby_impressions_off", off, pids_off)]
            for name, port, pids in pair if round_ % 2 == 0 else pair[::-1]:
                runs[name].append(run_load(port, nearby, args.seconds, args.clients, pids))
            runs["trivial_b"].append(run_load(off, ["/livez"], args.seconds, args.clients))
    med = medians(runs, ("rps", "p50_ms", "p99_ms", "server_cpu_us"))
    result = {
        "median": med,
        "errors": sum(r["errors"] for v in runs.values() for r in v),
        "ratio_deals_known_to_trivial": round(med["deals_known_user"]["rps"] / med["trivial"]["rps"], 2),
        "ratio_deals_anon_to_trivial": round(med["deals_anonymous"]["rps"] / med["trivial"]["rps"], 2),
        "ratio_deals_known_to_trivial_by_round": ratios_by_round(runs, "deals_known_user"),
        # Server CPU per request (workers and redis-server) against the trivial endpoint's:
        # the cost ratio without the clients' share of the cores.
        "cpu_ratio_trivial_to_deals_known": round(
            med["trivial"]["server_cpu_us"] / med["deals_known_user"]["server_cpu_us"], 2
        ),
        "impressions_cost_pct": round(
            100 * (1 - med["nearby_impressions_on"]["rps"] / med["nearby_impressions_off"]["rps"]), 1
        ),
        # The same cost as server CPU per request (workers and redis-server): the clients share
        # the two cores, so throughput also moves with their share.
        "impressions_cpu_cost_pct": round(
            100 * (med["nearby_impressions_on"]["server_cpu_us"] / med["nearby_impressions_off"]["server_cpu_us"] - 1),
            1,
        ),
        "runs": runs,
    }
    emit_json(result, args.json)
    return 0


def load_arguments(parser: argparse.ArgumentParser, repeats: str, seconds: float, argv=None) -> argparse.Namespace:
    """Add the load's options (--seconds, --clients, --json), parse, and check them and the
    ``repeats`` option (rounds or pairs of servers)."""
    parser.add_argument("--seconds", type=float, default=seconds, help=f"seconds of load per run (default {seconds:g})")
    parser.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    if getattr(args, repeats.lstrip("-")) < 1 or args.seconds <= 0 or args.clients < 1:
        parser.error(f"{repeats}, --seconds and --clients must be positive")
    return args


def bench_points(n: int = 1000) -> tuple[np.ndarray, list]:
    """Request points near the bundled stores (seeded), and a bench user for each."""
    stores = pd.read_csv("data/stores_helsinki.csv", usecols=["lat", "lon"])
    users = pd.read_csv("data/generated/helsinki/orders.csv", usecols=["user_id"])["user_id"].unique()
    rng = np.random.default_rng(3)
    pick = rng.integers(0, len(stores), n)
    pts = np.column_stack(
        [
            stores["lat"].to_numpy()[pick] + rng.normal(0, 0.002, n),
            stores["lon"].to_numpy()[pick] + rng.normal(0, 0.004, n),
        ]
    )
    return pts, list(zip(pts, rng.choice(users, len(pts))))


def deals_path(lat: float, lon: float) -> str:
    return "/v1/deals/recommended?" + urlencode({"lat": round(lat, 5), "lon": round(lon, 5)})


def signed_in(known: list, env: dict) -> list[tuple[str, dict]]:
    """(path, headers) of each point's user, with a token the server started with ``env`` accepts."""
    environ = {**os.environ, **env}
    return [(deals_path(a, b), {"Authorization": "Bearer " + token(str(u), environ=environ)}) for (a, b), u in known]


if __name__ == "__main__":
    sys.exit(main())
