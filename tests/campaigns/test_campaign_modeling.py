"""Cross-validation of a campaign's surrogate set-up: folds by composition, predictive spread with the noise."""

from __future__ import annotations

import warnings

import numpy as np

from aloop.campaigns.modeling import cross_validate
from aloop.surrogates import GPSurrogate


def _gp() -> GPSurrogate:
    return GPSurrogate(projection=None)


def test_replicates_of_a_composition_are_held_out_together() -> None:
    """Eight far-apart compositions measured twice: a held-out composition's twin is never in its training fold, so
    no prediction simply repeats the twin's value."""
    X = np.repeat(3.0 * np.eye(8), 2, axis=0)
    Y = np.repeat(np.arange(8.0), 2)[:, None]
    groups = [f"c{i}" for i in np.repeat(range(8), 2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv = cross_validate(_gp, X, Y, groups, ["y"], None, k=4, seed=0)
    assert cv is not None and cv.folds == 4 and list(cv.groups) == groups
    assert np.abs(cv.mean - Y).min() > 0.1
    np.testing.assert_allclose(cv.mean[::2], cv.mean[1::2])  # a composition's replicates share one prediction


def test_the_spread_of_out_of_fold_predictions_includes_the_measurement_noise() -> None:
    """Two tight clusters of noisy values: the latent mean of a cluster is well known, a new measurement is not; the
    CV intervals are for measurements, so they must cover about 95% of them."""
    rng = np.random.default_rng(0)
    X = np.repeat([[0.0, 0.0], [1.0, 1.0]], 10, axis=0) + rng.normal(0, 1e-3, (20, 2))
    Y = (np.repeat([0.0, 5.0], 10) + rng.normal(0, 1.0, 20))[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv = cross_validate(_gp, X, Y, [f"c{i}" for i in range(20)], ["y"], None, k=5, seed=0)
    assert cv.metrics["y"]["coverage_95"] >= 0.85 and np.median(cv.std) > 0.6
