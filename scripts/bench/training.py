"""Time of the whole retraining job at a given number of orders (what the loop runs nightly).

    python -m scripts.bench.training [--orders 1000000 5000000] [--keep DIR] [--json bench-results/training.json]

For each size: generated behaviour on the bundled Helsinki catalogue (seeded; 20 orders
per user over 120 days), then ``python -m scripts.train`` as its own process, exactly as
an operator runs it (LightFM hybrid with early stopping, then the second-stage ranker),
with its wall time and peak memory (the child's max RSS). ``--keep DIR`` keeps each size's
generated behaviour in ``DIR/users-N`` and reuses it on the next run (the generator is
seeded, so it is the same data; 5M orders take about 20 minutes to generate).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from scripts.common import emit_json

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _child(cmd: list[str]) -> tuple[float, float, str]:
    """(wall s, peak RSS MB of that child alone, its last output line)."""
    with tempfile.TemporaryFile("w+") as out:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.DEVNULL, text=True)
        _pid, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise RuntimeError(f"{cmd[2]} exited with {proc.returncode}")
        out.seek(0)
        lines = out.read().strip().splitlines()
    return wall, usage.ru_maxrss / 1024, (lines or [""])[-1]


def run(orders: int, threads: int, keep: str | None = None) -> dict:
    users = max(50, orders // 20)
    work = os.path.join(keep, f"users-{users}") if keep else tempfile.mkdtemp(prefix="o2o-bench-training-")
    try:
        gen_s = None
        if not os.path.exists(os.path.join(work, "orders.csv")):
            gen_s, _gen_mb, _ = _child(
                [sys.executable, "-m", "scripts.data.generate_behaviour", "--users", str(users), "--out", work]
            )
        with open(os.path.join(work, "orders.csv")) as fh:
            n_orders = sum(1 for _ in fh) - 1
        train_s, train_mb, artifact = _child(
            [
                sys.executable,
                "-m",
                "scripts.train",
                "--data",
                work,
                "--out",
                os.path.join(work, "artifacts"),
                "--threads",
                str(threads),
            ]
        )
        return {
            "orders": n_orders,
            "users": users,
            "generate_s": round(gen_s, 1) if gen_s is not None else "reused",
            "train_s": round(train_s, 1),
            "train_peak_rss_mb": round(train_mb),
            "artifact": os.path.basename(artifact),
        }
    finally:
        shutil.rmtree(os.path.join(work, "artifacts") if keep else work, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", default=None, help="keep and reuse generated behaviour here")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    results = []
    for n in args.orders:
        results.append(run(n, args.threads, args.keep))
        print(results[-1], flush=True)
    emit_json({"threads": args.threads, "runs": results}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
