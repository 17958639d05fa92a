"""The oracle rebuilds the generator's hidden world from its settings; for any other world
(a changed generator, other settings) it must say so, not report."""

import json
import pathlib

import pytest

from scripts import generator_oracle
from scripts.data import generate_behaviour

STORES = str(pathlib.Path(__file__).resolve().parents[1] / "data" / "stores_helsinki.csv")
SMALL = ["--stores", STORES, "--users", "60", "--days", "40", "--start", "2026-01-05"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("generated")
    assert generate_behaviour.main([*SMALL, "--out", str(out)]) == 0
    return str(out)


def test_the_oracle_rebuilds_the_world_that_made_the_orders(generated, capsys):
    capsys.readouterr()
    args = ["--generated", generated, "--stores", STORES, "--days", "40", "--start", "2026-01-05", "--runs", "20"]
    assert generator_oracle.main(args) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["users"] > 20 and 0 < got["most_frequent"] < 1 and 0 < got["oracle"] <= 1


@pytest.mark.parametrize(
    "other, says",
    [(["--world-seed", "1"], "not the one that made the orders"), (["--days", "41"], "rebuilt deals")],
)
def test_the_oracle_refuses_another_world(generated, capsys, other, says):
    base = ["--generated", generated, "--stores", STORES, "--days", "40", "--start", "2026-01-05"]
    assert generator_oracle.main([*base, *other]) == 2
    assert says in capsys.readouterr().err


def test_without_generated_data_it_says_what_to_run(tmp_path, capsys):
    assert generator_oracle.main(["--generated", str(tmp_path)]) == 2
    assert "generate_behaviour" in capsys.readouterr().err


def test_an_oracle_without_the_true_tastes_ranks_worse_and_says_what_it_knew(generated, capsys):
    """Tastes taken from the TRAIN orders lower the oracle on the same users and runs
    (seeded; here by half); no utility from home and work changes it (little: on the
    Helsinki orders too, the tastes make the room); the report says what it knew."""
    base = ["--generated", generated, "--stores", STORES, "--days", "40", "--start", "2026-01-05", "--runs", "20"]
    got = {}
    for name, extra in (("all", []), ("taste", ["--taste-from-orders", "0.1"]), ("places", ["--no-places"])):
        capsys.readouterr()
        assert generator_oracle.main([*base, *extra]) == 0
        got[name] = json.loads(capsys.readouterr().out)
    assert got["all"]["taste_from_orders"] is None and got["all"]["places"] is True
    assert got["taste"]["taste_from_orders"] == 0.1 and got["places"]["places"] is False
    assert got["taste"]["most_frequent"] == got["all"]["most_frequent"]  # the same users
    assert got["taste"]["oracle"] < 0.7 * got["all"]["oracle"]
    assert got["places"]["oracle"] != got["all"]["oracle"]
