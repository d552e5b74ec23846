"""benchmarks/bench_carve.py: the Magpie trees scored on the carved part, by K-fold CV over train, and on test."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from sklearn.ensemble import ExtraTreesRegressor

from aloop.datasets import DatasetError

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_carve.py"
_spec = importlib.util.spec_from_file_location("bench_carve", _PATH)
bench_carve = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("bench_carve", bench_carve)
_spec.loader.exec_module(bench_carve)


def test_three_scores_of_the_same_trees(monkeypatch) -> None:
    monkeypatch.setattr(bench_carve, "tree_learner", lambda kind: ExtraTreesRegressor(n_estimators=5, random_state=0))
    try:
        r = bench_carve.carve_check("expt-formation-enthalpy", folds=2)
    except DatasetError as exc:
        pytest.skip(f"needs dataset 'expt-formation-enthalpy': {exc}")
    assert r["folds"] == 2
    assert r["n_val"] == round(0.1 * r["n_train"])  # bench_transfer's carve
    for k in ("carved_val_mae", "kfold_mae", "test_mae"):
        assert 0 < r[k] < 1.0  # eV/atom; the training mean scores about 1.0


def test_fewer_than_two_folds_is_refused(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_carve.py", "--folds", "1"])
    with pytest.raises(SystemExit):
        bench_carve.main()
    assert "--folds must be at least 2, got 1" in capsys.readouterr().err
