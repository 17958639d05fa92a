"""The evaluate, train and Foursquare commands, run as a user runs them."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from recommender import load
from scripts import evaluate
from scripts import train as train_cmd
from scripts.data import foursquare
from tests.test_recommender import checkerboard

FSQ = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "foursquare_nyc")


@pytest.fixture(scope="module")
def board_files(tmp_path_factory):
    stores, pairs = checkerboard(n_users=40, n_items=40, per_user=10)
    d = tmp_path_factory.mktemp("board")
    rng = np.random.default_rng(0)
    test_mask = rng.random(len(pairs)) < 0.25
    stores.to_csv(d / "stores.csv", index=False)
    pairs[~test_mask].to_csv(d / "train.csv", index=False)
    pairs[test_mask].to_csv(d / "test.csv", index=False)
    pairs.assign(ts=pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(len(pairs)), unit="h")).to_csv(
        d / "all.csv", index=False
    )
    return d


def test_evaluate_writes_the_contract(board_files, tmp_path, capsys):
    out = tmp_path / "eval.json"
    d = board_files
    assert (
        evaluate.main(
            [
                "--stores",
                str(d / "stores.csv"),
                "--train",
                str(d / "train.csv"),
                "--test",
                str(d / "test.csv"),
                "--k",
                "5",
                "--json",
                str(out),
                "--max-epochs",
                "15",
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["k"] == 5 and result["served"] == "served"
    assert set(result["models"]) == {
        "popularity",
        "geo_popularity",
        "user_knn",
        "item_knn",
        "rp3beta",
        "lightfm_cf",
        "lightfm_hybrid",
        "lightfm_blend",
        "served",
    }
    for metrics in result["models"].values():
        assert {"precision", "recall", "ndcg", "cold_ndcg", "coverage"} <= set(metrics)
    # On the checkerboard, collaborative filtering must beat popularity clearly.
    for name in ("lightfm_cf", "user_knn", "item_knn", "rp3beta"):
        assert result["models"][name]["ndcg"] > 1.5 * result["models"]["popularity"]["ndcg"], name
    assert {"neighbours", "shrink"} <= set(result["models"]["user_knn"]["settings"])  # chosen on validation
    assert "served *" in capsys.readouterr().out


def test_evaluate_with_a_time_split(board_files, tmp_path):
    d = board_files
    out = tmp_path / "eval.json"
    assert (
        evaluate.main(
            [
                "--stores",
                str(d / "stores.csv"),
                "--interactions",
                str(d / "all.csv"),
                "--split",
                "per-user-time:0.8",
                "--json",
                str(out),
                "--max-epochs",
                "3",
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["data"]["test_pairs"] > 0
    assert result["split"] == {"kind": "per-user-time", "train_share": 0.8, "by": "ts"}


def test_a_split_without_every_time_says_it_is_random(board_files, tmp_path, capsys):
    """One row without ``ts`` makes the split random for everyone: another protocol, so the
    command says so and the JSON keeps it."""
    d = board_files
    rows = pd.read_csv(d / "all.csv")
    rows.loc[3, "ts"] = None
    rows.to_csv(tmp_path / "gap.csv", index=False)
    out = tmp_path / "eval.json"
    args = ["--stores", str(d / "stores.csv"), "--interactions", str(tmp_path / "gap.csv")]
    args += ["--split", "per-user-time:0.8", "--json", str(out), "--max-epochs", "2", "--protocol", "repeat"]
    assert evaluate.main(args) == 0
    assert json.loads(out.read_text())["split"]["by"] == "random"
    assert f"1 of {len(rows)} rows have no ts" in capsys.readouterr().err


def test_unix_times_split_as_their_iso_equals(board_files, tmp_path):
    """Public check-in and review sets often give times as Unix seconds or milliseconds: the
    same visits must split and score as with ISO 8601 times (they were refused whole)."""
    d = board_files
    iso = pd.read_csv(d / "all.csv")
    seconds = pd.to_datetime(iso["ts"], utc=True).astype("int64") // 10**9
    outs = {}
    for name, ts in (("iso", iso["ts"]), ("s", seconds), ("ms", seconds * 1000 + 250)):
        iso.assign(ts=ts).to_csv(tmp_path / f"{name}.csv", index=False)
        out = tmp_path / f"{name}.json"
        args = ["--stores", str(d / "stores.csv"), "--interactions", str(tmp_path / f"{name}.csv")]
        args += ["--split", "per-user-time:0.8", "--json", str(out), "--max-epochs", "2"]
        args += ["--protocol", "repeat"]  # the cheapest protocol to tell a time split from another
        assert evaluate.main(args) == 0
        result = json.loads(out.read_text())
        outs[name] = (result["data"], result["models"]["most_recent"]["ndcg"])
    assert outs["s"] == outs["iso"] and outs["ms"] == outs["iso"]


@pytest.mark.parametrize(
    "rows, says",
    [
        ("user_id,store_id,ts\nu1,s0,yesterday\nu2,s1,soon\n", "no usable rows (read 2)"),
        ("user_id,store_id\nu1,s0\nu2,s1\n", "no user has two or more stores"),
    ],
    ids=["every-row-refused", "one-store-each"],
)
def test_evaluate_says_what_is_wrong_with_unusable_files(board_files, tmp_path, capsys, rows, says):
    d = board_files
    stores = pd.read_csv(d / "stores.csv")
    ids = stores["store_id"].astype(str).tolist()
    (tmp_path / "x.csv").write_text(rows.replace("s0", ids[0]).replace("s1", ids[1]))
    args = ["--stores", str(d / "stores.csv"), "--interactions", str(tmp_path / "x.csv")]
    args += ["--split", "per-user-time:0.8"]
    assert evaluate.main(args) == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--split", "per-user-time:1.5"], ["--split", "random:0.5"], []])
def test_evaluate_refuses_bad_arguments(board_files, args):
    d = board_files
    with pytest.raises(SystemExit) as exc:
        evaluate.main(["--stores", str(d / "stores.csv"), "--interactions", str(d / "all.csv"), *args])
    assert exc.value.code == 2


@pytest.mark.slow  # a full training run through the command
def test_train_command_writes_a_loadable_artifact(tmp_path, capsys):
    from geo_index import load_catalogue
    from recommender.generator import BehaviourConfig, generate

    stores, _ = load_catalogue("data/stores_helsinki.csv")
    b = generate(stores, BehaviourConfig(n_users=150, days=30, seed=2))
    b.orders.to_csv(tmp_path / "orders.csv", index=False)
    b.reviews.to_csv(tmp_path / "reviews.csv", index=False)
    assert train_cmd.main(["--data", str(tmp_path), "--out", str(tmp_path / "art"), "--max-epochs", "2"]) == 0
    path = capsys.readouterr().out.strip().splitlines()[-1]
    assert load(path).meta["n_pairs"] > 100


@pytest.mark.slow  # real data, when this machine has it
@pytest.mark.skipif(
    not os.path.exists(os.path.join(FSQ, "specific_train.csv")),
    reason="../shared/data/foursquare_nyc is not on this machine (it is evaluation data, not test data)",
)
def test_foursquare_adapter(tmp_path):
    assert foursquare.main(["--src", FSQ, "--out", str(tmp_path)]) == 0
    stores = pd.read_csv(tmp_path / "stores.csv")
    assert len(stores) == 13848 and stores["store_id"].is_unique
    assert stores["rating"].dropna().between(0, 5).all()
    train = pd.read_csv(tmp_path / "train.csv")
    assert train["user_id"].nunique() == 193
