"""The oracle rebuilds the generator's hidden world from its seed; if the bundled orders came
from another world (a changed generator, a regenerated file), it must say so, not report."""

import json

import pytest

from scripts import generator_oracle


def test_the_oracle_rebuilds_the_world_that_made_the_bundled_orders(capsys):
    assert generator_oracle.main(["--users", "30", "--runs", "20"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["users"] == 30 and 0 < got["most_frequent"] < 1 and 0 < got["oracle"] <= 1


def test_the_oracle_refuses_a_world_that_is_not_the_generator_s(monkeypatch, capsys):
    monkeypatch.setattr(generator_oracle, "BehaviourConfig", lambda start: _other_seed(start))
    assert generator_oracle.main(["--users", "5", "--runs", "1"]) == 2
    assert "not the one that made the orders" in capsys.readouterr().err


def _other_seed(start):
    from recommender.generator import BehaviourConfig

    return BehaviourConfig(start=start, seed=1)


@pytest.fixture(autouse=True)
def _at_the_root(monkeypatch):
    import pathlib

    monkeypatch.chdir(pathlib.Path(__file__).resolve().parents[1])
