"""benchmarks/baybe_replay.py: BayBE's simulation loop replayed on a tiny slice of the OER plate."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("baybe")

from aloop.datasets import DatasetError, load  # noqa: E402

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "baybe_replay.py"
_spec = importlib.util.spec_from_file_location("baybe_replay", _PATH)
baybe_replay = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(baybe_replay)

COLS = ["ni_load", "fe_load", "co_load"]


@pytest.fixture(scope="module")
def pool():
    try:
        d = load("oer-plate-3496")
    except DatasetError as exc:
        pytest.skip(f"needs dataset 'oer-plate-3496': {exc}")
    d = d.drop_duplicates(COLS).head(60).reset_index(drop=True)
    return d[COLS].astype(float), d["overpotential_V"].to_numpy(dtype=float)


def test_replay_order_values_and_initial_rows(pool) -> None:
    D, y = pool
    inits = [np.array([0, 5, 17]), np.array([40, 2, 33])]
    res = baybe_replay.run_baybe(D, y, "minimize", inits, [3, 11], batch_size=2, budget=9)
    assert [r["seed"] for r in res] == [3, 11]
    for r, init in zip(res, inits):
        assert len(r["order"]) == 9
        assert len(set(r["order"])) == 9
        assert r["order"][:3] == init.tolist()
        assert all(0 <= i < len(y) for i in r["order"])
        np.testing.assert_array_equal(r["values"], y[r["order"]])
        assert r["seconds"] > 0
        assert "TwoPhaseMetaRecommender" in r["recommender"] and "BotorchRecommender" in r["recommender"]
    again = baybe_replay.run_baybe(D, y, "minimize", inits[:1], [3], batch_size=2, budget=9)
    assert again[0]["order"] == res[0]["order"]  # the seed is honoured
    # budget == n_init: nothing to recommend, the initial rows come back unchanged
    (r,) = baybe_replay.run_baybe(D, y, "maximize", [inits[0]], [0], batch_size=4, budget=3)
    assert r["order"] == inits[0].tolist()


def test_bad_inputs_raise(pool) -> None:
    D, y = pool
    init, run = [np.array([0, 1, 2])], baybe_replay.run_baybe
    ok = dict(descriptors=D, y=y, direction="minimize", initial_rows=init, seeds=[0], batch_size=2, budget=9)
    bad = [
        dict(y=y[:-1]),  # length mismatch
        dict(y=np.where(np.arange(len(y)) == 4, np.nan, y)),  # NaN target
        dict(descriptors=D.assign(ni_load=np.where(np.arange(len(y)) == 4, np.nan, D["ni_load"]))),
        dict(direction="max"),
        dict(seeds=[0, 1]),  # one initial array for two seeds
        dict(budget=2),  # budget < n_init
        dict(batch_size=0),
        dict(budget=len(y) + 1),
        dict(initial_rows=[np.array([0, 0, 1])]),  # repeated initial row
        dict(initial_rows=[np.array([0, len(y)])]),  # out of range
        dict(descriptors=D.assign(ni_load=D["ni_load"].where(D.index != 1, D.loc[0, "ni_load"]),
                                  fe_load=D["fe_load"].where(D.index != 1, D.loc[0, "fe_load"]),
                                  co_load=D["co_load"].where(D.index != 1, D.loc[0, "co_load"]))),  # dup row
    ]
    for override in bad:
        with pytest.raises(ValueError):
            run(**{**ok, **override})
