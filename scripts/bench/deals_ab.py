"""Deal-list throughput of this tree against another commit, in fresh servers each round.

    python -m scripts.bench.deals_ab --against 9336e9d [--pairs 4] [--seconds 5] [--json F]

Why a bench of its own: on this machine one gunicorn differs from another of the same
code by up to ~15 % of CPU per request (where it landed in memory, which core), as much as
most changes here. ``scripts.bench.deals`` starts one server and cannot tell the two
apart. Here each pair starts a fresh server of each tree (which one first alternates),
runs the trivial endpoint, known users' and anonymous deal lists on both, interleaved, and
stops them; figures are medians over pairs, and every pair's ratios are printed, so a
change counts only where it shows in most pairs.

The reference is a detached ``git worktree`` of the commit (removed at the end), served by
the same virtual environment on this tree's data and model (``O2O_DEALS``,
``O2O_BASE_ORDERS``, ``O2O_ARTIFACTS`` point here), with one secret for both, so the same
user tokens verify on both servers. A request that fails on either side is counted and
printed: a reference that cannot read this tree's model would not be a fair one.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from scripts.bench.deals import bench_points, deals_path, load_arguments, signed_in
from scripts.bench.harness import ROOT, fresh_servers, medians, ratios_by_round, run_load
from scripts.common import emit_json

LOADS = ("trivial", "deals_known_user", "deals_anonymous")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the reference commit (any git revision)")
    parser.add_argument("--pairs", type=int, default=4, help="fresh servers of each tree (default 4)")
    args = load_arguments(parser, "--pairs", seconds=5, argv=argv)
    try:
        commit = _git("rev-parse", "--verify", "--quiet", args.against + "^{commit}").strip()
    except subprocess.CalledProcessError:
        parser.error(f"--against {args.against!r} names no commit of this repository")
    reference = tempfile.mkdtemp(prefix="o2o-ab-")
    _git("worktree", "add", "--detach", reference, commit)
    shared = {
        "O2O_SECRET_KEY": secrets.token_hex(32),
        "O2O_DEALS": os.path.join(ROOT, "data", "generated", "helsinki", "deals.csv"),
        "O2O_BASE_ORDERS": os.path.join(ROOT, "data", "generated", "helsinki", "orders.csv"),
        "O2O_ARTIFACTS": os.path.join(ROOT, "artifacts"),
    }
    pts, known = bench_points()
    paths: dict[str, list] = {
        "trivial": ["/livez"],
        "deals_known_user": signed_in(known, shared),
        "deals_anonymous": [deals_path(a, b) for a, b in pts],
    }
    trees = {"head": ROOT, "reference": reference}
    runs: dict = {tree: {load: [] for load in LOADS} for tree in trees}
    try:
        for pair in range(args.pairs):
            order = list(trees) if pair % 2 == 0 else list(trees)[::-1]
            with fresh_servers({tree: shared for tree in order}, roots=trees) as servers:
                for load in LOADS:
                    for tree in order:
                        port, pids, _env = servers[tree]
                        runs[tree][load].append(run_load(port, paths[load], args.seconds, args.clients, pids))
            print(f"pair {pair + 1}: " + _pair_line(runs, pair), file=sys.stderr, flush=True)
    finally:
        _git("worktree", "remove", "--force", reference)
        shutil.rmtree(reference, ignore_errors=True)
    result = {"against": commit, "head": _git("rev-parse", "HEAD").strip(), "pairs": args.pairs}
    for tree in trees:
        result[tree] = _summary(runs[tree])
    result["failed_requests"] = {t: sum(r["errors"] + r["non_2xx"] for v in runs[t].values() for r in v) for t in trees}
    result["runs"] = runs
    emit_json(result, args.json)
    return 1 if any(result["failed_requests"].values()) else 0


def _summary(runs_of_tree: dict) -> dict:
    known = ratios_by_round(runs_of_tree, "deals_known_user")
    anon = ratios_by_round(runs_of_tree, "deals_anonymous")
    return {
        "median": medians(runs_of_tree, ("rps", "server_cpu_us")),
        "ratio_known_to_trivial_by_pair": known,
        "ratio_anon_to_trivial_by_pair": anon,
        "ratio_known_to_trivial": float(np.median(known)),
        "ratio_anon_to_trivial": float(np.median(anon)),
    }


def _pair_line(runs: dict, pair: int) -> str:
    parts = []
    for tree, by_load in runs.items():
        t, k, a = (by_load[load][pair] for load in LOADS)
        parts.append(
            f"{tree} known {k['rps'] / t['rps']:.3f}x anon {a['rps'] / t['rps']:.3f}x "
            f"(server CPU us/req: trivial {t['server_cpu_us']:.0f}, known {k['server_cpu_us']:.0f}, "
            f"anon {a['server_cpu_us']:.0f})"
        )
    return "; ".join(parts)


def _git(*words: str) -> str:
    return subprocess.run(["git", *words], cwd=ROOT, check=True, capture_output=True, text=True).stdout


if __name__ == "__main__":
    sys.exit(main())
