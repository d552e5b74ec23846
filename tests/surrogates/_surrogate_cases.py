"""Small real-data splits and tiny surrogate configurations shared by the surrogate tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from aloop.datasets import DatasetError, load
from aloop.features import ElementFractions
from aloop.surrogates.base import Surrogate
from aloop.surrogates.ensemble import MLPEnsembleSurrogate
from aloop.surrogates.finetuned import DeepKernelGP, ElemNetEnsembleSurrogate
from aloop.surrogates.gp import GPSurrogate
from aloop.surrogates.mixture import GPForestMixture
from aloop.surrogates.multitask import MultiTaskGPSurrogate
from aloop.surrogates.trees import TreeEnsembleSurrogate

OER_METALS = ["ni", "fe", "co", "mn", "ce", "la", "ta", "cu"]


@dataclass
class Split:
    """Train/test arrays of one small problem (``y`` is ``n × m``)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def _load(name: str) -> pd.DataFrame:
    try:
        return load(name)
    except DatasetError as err:
        pytest.skip(f"{err} (set ALOOP_DATA_DIR to the shared data folder)")


def _bandgap() -> Split:
    frame = _load("expt-bandgap")
    train = frame[frame["split"] == "train"].sample(300, random_state=0)
    test = frame[frame["split"] == "test"].sample(150, random_state=0)
    ef = ElementFractions()
    return Split(ef.transform(list(train["formula"])).astype(np.float64), train[["gap expt"]].to_numpy(),
                 ef.transform(list(test["formula"])).astype(np.float64), test[["gap expt"]].to_numpy())


def _oer(features: str) -> Split:
    frame = _load("oer-plate-3496").sample(450, random_state=0)
    if features == "raw":
        X = frame[[c for c in frame.columns if c.endswith("_load")]].to_numpy(dtype=np.float64)
    else:
        X = ElementFractions().transform(list(frame["formula"])).astype(np.float64)
    y = frame[["overpotential_V"]].to_numpy()
    return Split(X[:300], y[:300], X[300:], y[300:])


def _oer_two_plates() -> Split:
    """Overpotentials on plates 3496 and 3851 joined by composition: 2 properties, NaN where a plate lacks it."""
    frames = []
    for plate in ("3496", "3851"):
        f = _load(f"oer-plate-{plate}")
        f = f.assign(**{m + "_load": f.get(m + "_load", 0.0) for m in OER_METALS})
        frames.append(f.groupby([m + "_load" for m in OER_METALS])["overpotential_V"].mean().rename(plate))
    joined = pd.concat(frames, axis=1).reset_index().sample(frac=1.0, random_state=0)
    both = joined.dropna()  # compositions on both plates: keep test rows fully measured
    rest = joined.drop(both.index)
    train = pd.concat([both.iloc[:60], rest.iloc[:60]])
    test = both.iloc[60:160]
    cols = [m + "_load" for m in OER_METALS]
    return Split(train[cols].to_numpy(), train[["3496", "3851"]].to_numpy(),
                 test[cols].to_numpy(), test[["3496", "3851"]].to_numpy())


DATA: dict[str, Callable[[], Split]] = {
    "bandgap-ef": _bandgap,
    "oer-raw": lambda: _oer("raw"),
    "oer-ef": lambda: _oer("ef"),
    "oer-two-plates": _oer_two_plates,
}

#: name -> (factory of an unfitted tiny surrogate, data set it is tested on)
CASES: dict[str, tuple[Callable[[], Surrogate], str]] = {
    "gp": (lambda: GPSurrogate(), "bandgap-ef"),
    "gp-raw": (lambda: GPSurrogate(), "oer-raw"),
    "random-forest": (lambda: TreeEnsembleSurrogate(n_estimators=60), "bandgap-ef"),
    "extra-trees": (lambda: TreeEnsembleSurrogate(kind="extra_trees", n_estimators=60), "oer-raw"),
    "mlp-ensemble": (lambda: MLPEnsembleSurrogate(n_members=3, hidden=(32,), max_epochs=60, patience=10), "oer-raw"),
    "elemnet-ensemble": (
        lambda: ElemNetEnsembleSurrogate(n_members=3, hidden_widths=(32, 16), lr=1e-3, batch_size=64,
                                         max_epochs=40, patience=8),
        "oer-ef",
    ),
    "deep-kernel-gp": (
        lambda: DeepKernelGP(hidden_widths=(32, 16), n_components=8,
                             finetune={"lr": 1e-3, "batch_size": 64, "max_epochs": 40, "patience": 8}),
        "oer-ef",
    ),
    "multitask-gp": (lambda: MultiTaskGPSurrogate(), "oer-two-plates"),
    "gp-forest": (lambda: GPForestMixture(forest={"n_estimators": 60}), "oer-raw"),
}

_data_cache: dict[str, Split] = {}
_fit_cache: dict[str, Surrogate] = {}


def get_data(name: str) -> Split:
    if name not in _data_cache:
        _data_cache[name] = DATA[name]()
    return _data_cache[name]


def get_fitted(case: str) -> tuple[Surrogate, Split]:
    """The surrogate of ``case`` fitted on its data (fitted once per test session)."""
    factory, data_name = CASES[case]
    data = get_data(data_name)
    if case not in _fit_cache:
        _fit_cache[case] = factory().fit(data.X_train, data.y_train)
    return _fit_cache[case], data
