"""Every policy through ``propose``: stochastic policies, ensembles (QBC), several objectives, reasons."""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pytest
import torch
from acquisition_models import TorchGP

from aloop.acquisition import (
    LogNEHVI,
    Maximize,
    Minimize,
    MultiObjective,
    ScalarizedLogEI,
    Target,
    Thompson,
    Window,
    propose,
)
from aloop.surrogates.base import Surrogate


class BagOfRidges(Surrogate):
    """Test ensemble: ridge regressions on random Fourier features, each on a bootstrap sample."""

    def __init__(self, members: int = 8, seed: int = 0) -> None:
        super().__init__()
        self.s, self.rng = members, np.random.default_rng(seed)

    def _phi(self, X: np.ndarray) -> np.ndarray:
        return np.cos(X @ self.W + self.b)

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        self.W, self.b = self.rng.normal(scale=3.0, size=(X.shape[1], 50)), self.rng.uniform(0, 6.3, 50)
        self.coefs = []
        for _ in range(self.s):
            i = self.rng.integers(0, len(X), len(X))
            P = self._phi(X[i])
            self.coefs.append(np.linalg.solve(P.T @ P + 0.1 * np.eye(50), P.T @ y[i]))
        self.n_features = X.shape[1]
        return self

    def noise_variance(self) -> np.ndarray:
        return np.array([1e-3])

    def member_predictions(self, X: np.ndarray) -> np.ndarray:
        return np.stack([self._phi(X) @ c for c in self.coefs])[:, :, None]  # s × N × 1

    def predict(self, X: np.ndarray, batch_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        M = self.member_predictions(self._check_predict_input(X))
        return M.mean(0), M.var(0)

    def covariance(self, Xa: np.ndarray, Xb: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def posterior(self, X: torch.Tensor, **kwargs: Any) -> Any:
        raise NotImplementedError


def test_qbc_picks_disagreement_and_spreads_the_batch(fitted_gp: tuple) -> None:
    _, X, y, pool = fitted_gp
    bag = BagOfRidges().fit(X, y)
    picks = propose(bag, pool, Maximize(), "qbc", q=4)
    spread = bag.member_predictions(pool)[:, :, 0].var(0)
    assert picks[0].index == int(np.argmax(spread))
    assert len({p.index for p in picks}) == 4 and "members disagree" in picks[0].reason
    # ensembles without covariance condition batches on the members' empirical covariance
    ucb = propose(bag, pool, Maximize(), "ucb", q=3, pending=[0])
    assert len({p.index for p in ucb}) == 3


def test_thompson_is_seeded_and_supports_independent_draws(fitted_gp: tuple) -> None:
    gp, _, y, pool = fitted_gp
    a = propose(gp, pool, Target(0.3), "thompson", q=4, seed=5, X_pending=pool[:2] + 0.01)
    b = propose(gp, pool, Target(0.3), "thompson", q=4, seed=5, X_pending=pool[:2] + 0.01)
    assert [p.index for p in a] == [p.index for p in b]
    screened = propose(gp, pool, Maximize(), Thompson(shortlist=40, screen_draws=4), q=4, seed=1)
    independent = propose(gp, pool, Maximize(), Thompson(joint=False), q=4, seed=1)
    assert len({p.index for p in screened}) == 4 and len({p.index for p in independent}) == 4
    mean = gp.predict(pool)[0][:, 0]
    assert np.mean([mean[p.index] for p in independent]) > np.quantile(mean, 0.8)  # draws favour good means


def test_random_is_uniform_without_feasibility(fitted_gp: tuple) -> None:
    gp, _, _, pool = fitted_gp
    counts = np.zeros(len(pool))
    for seed in range(200):
        for p in propose(gp, pool, Maximize(), "random", q=3, seed=seed):
            counts[p.index] += 1
    assert counts.sum() == 600 and counts.max() < 12


def test_reasons_are_human_readable(fitted_gp: tuple) -> None:
    gp, _, y, pool = fitted_gp
    ei = propose(gp, pool, Maximize(name="zT"), "log_ei", q=1, y_observed=y)[0]
    assert ei.reason.startswith("high EI: mean ") and "above best" in ei.reason and ei.policy == "log_ei"
    assert propose(gp, pool, Maximize(), "max_variance", q=1)[0].reason.startswith("explores: highest")
    win = propose(gp, pool, Window(0.1, 0.4, units="eV"), "log_ei", q=1)[0]
    assert win.reason.startswith("likely in window: P(0.1–0.4) = ") and " eV" in win.reason
    tgt = propose(gp, pool, Target(0.25, units="eV"), "log_ei", q=1, y_observed=y)[0]
    assert "from target 0.25" in tgt.reason


def test_ucb_reason_names_the_optimistic_bound_for_the_direction(fitted_gp: tuple) -> None:
    """Minimising, UCB ranks by μ − 2σ: the reason says lower bound and shows that value, as the score is its negative."""
    from aloop.acquisition.policies import UCB

    assert UCB().reason(Minimize(units="V"), 0.411, 0.051, None) == (
        "optimistic: mean 0.411 ± 0.051 V, lower bound μ−2σ = 0.309 V")
    assert UCB().reason(Maximize(units="V"), 0.411, 0.051, None).endswith("upper bound μ+2σ = 0.513 V")
    assert UCB(beta=9.0).reason(Target(0.25, units="eV"), 0.411, 0.051, None).endswith(
        "optimistic distance to target 0.25: |μ−0.25|−3σ = 0.008 eV")
    # within reach of the target or window: no negative "distance" on its own
    assert UCB().reason(Target(0.25, units="eV"), 0.3, 0.05, None).endswith(
        "target 0.25 within μ ± 2σ (|μ−0.25|−2σ = -0.05 eV)")
    assert UCB().reason(Window(1.1, 1.7, units="eV"), 2.0, 0.1, None).endswith(
        "optimistic distance to window 1.1–1.7 (centre 1.4): |μ−1.4|−2σ = 0.4 eV")
    gp, _, _, pool = fitted_gp
    for objective, sign in ((Minimize(units="V"), -1.0), (Maximize(units="V"), 1.0)):
        pick = propose(gp, pool, objective, "ucb", q=1)[0]
        shown = float(pick.reason.split(" = ")[1].split()[0])
        assert shown == pytest.approx(sign * pick.score, rel=5e-3)  # shown to 3 significant figures
        assert ("lower bound μ−2σ" if sign < 0 else "upper bound μ+2σ") in pick.reason


@pytest.fixture(scope="module")
def two_output_gp() -> tuple[TorchGP, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    X = rng.uniform(size=(24, 2))
    Y = np.stack([np.sin(4 * X[:, 0]) + X[:, 1], (X[:, 0] - 0.5) ** 2 + 0.5 * X[:, 1]], axis=1)
    return TorchGP().fit(X, Y), X, Y, rng.uniform(size=(400, 2))


def test_log_nehvi_batch(two_output_gp: tuple) -> None:
    gp, X, Y, pool = two_output_gp
    mo = MultiObjective([Maximize(output=0, name="zT"), Target(0.2, output=1, name="gap", units="eV")])
    picks = propose(gp, pool, mo, LogNEHVI(shortlist=48, mc_samples=32), q=3, X_observed=X, y_observed=Y,
                    pending=[0, 1], seed=0)
    idx = [p.index for p in picks]
    assert len(set(idx)) == 3 and not {0, 1} & set(idx)
    assert isinstance(picks[0].mean, tuple) and len(picks[0].mean) == 2
    assert picks[0].reason.startswith("grows the Pareto front: zT ")
    with pytest.raises(ValueError, match="needs X_observed"):
        propose(gp, pool, mo, "log_nehvi", q=2)


def test_an_unreachable_reference_point_is_warned_about(two_output_gp: tuple) -> None:
    gp, X, Y, pool = two_output_gp
    policy = LogNEHVI(shortlist=32, mc_samples=16)
    beyond = MultiObjective([Maximize(output=0), Maximize(output=1)], ref_point=[Y[:, 0].max() + 10, 0.0])
    with pytest.warns(UserWarning, match="no measured composition beats the reference point on every objective"):
        propose(gp, pool, beyond, policy, q=1, X_observed=X, y_observed=Y, seed=0)
    import warnings

    reachable = MultiObjective([Maximize(output=0), Maximize(output=1)], ref_point=[Y[:, 0].min(), Y[:, 1].min()])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        propose(gp, pool, reachable, policy, q=1, X_observed=X, y_observed=Y, seed=0)


def test_scalarized_log_ei(two_output_gp: tuple) -> None:
    gp, _, Y, pool = two_output_gp
    mo = MultiObjective([Maximize(output=0), Minimize(output=1)])
    first = propose(gp, pool, mo, ScalarizedLogEI(weights=[1.0, 0.0]), q=1, y_observed=Y)[0]
    only_first = propose(gp, pool, Maximize(output=0), "log_ei", q=1, y_observed=Y)[0]
    assert first.index == only_first.index  # weight 0 on the second objective: plain log-EI on the first
    picks = propose(gp, pool, mo, "scalarized_log_ei", q=4, y_observed=Y, pending=[3])
    assert len({p.index for p in picks}) == 4
    with pytest.raises(ValueError, match="Maximize/Minimize"):
        propose(gp, pool, MultiObjective([Maximize(output=0), Target(0.1, output=1)]), "scalarized_log_ei", q=1,
                y_observed=Y)


def test_scalarized_log_ei_uses_the_variance_of_the_weighted_sum_of_correlated_outputs() -> None:
    from botorch.acquisition.objective import ScalarizedPosteriorTransform

    from aloop.surrogates import MultiTaskGPSurrogate

    rng = np.random.default_rng(0)
    X, pool = rng.uniform(size=(40, 3)), rng.uniform(size=(200, 3))
    f = np.sin(4 * X[:, 0]) + X[:, 1]
    Y = np.stack([f, 2 * f], axis=1) + 0.02 * rng.normal(size=(40, 2))  # two strongly correlated properties
    model = MultiTaskGPSurrogate().fit(X, Y)
    mo = MultiObjective([Maximize(output=0), Minimize(output=1)])  # a trade-off: weights of opposite sign
    pick = propose(model, pool, mo, "scalarized_log_ei", q=1, y_observed=Y)[0]
    a = ScalarizedLogEI().coefficients(mo, 2, Y)
    reference = model.posterior(torch.as_tensor(pool[[pick.index]]),
                                posterior_transform=ScalarizedPosteriorTransform(torch.as_tensor(a)))
    assert pick.std == pytest.approx(float(reference.variance.detach().sqrt()), rel=1e-5)
    assert pick.std < 0.9 * float(np.sqrt(model.predict(pool[[pick.index]])[1] @ a**2)[0])


def test_query_by_committee_reports_the_ensembles_own_spread() -> None:
    from aloop.surrogates import TreeEnsembleSurrogate

    rng = np.random.default_rng(1)
    X, pool = rng.uniform(size=(40, 3)), rng.uniform(size=(100, 3))
    model = TreeEnsembleSurrogate(n_estimators=8).fit(X, np.sin(4 * X[:, 0]) + X[:, 1])
    for pick in propose(model, pool, Maximize(), "qbc", q=3):
        assert pick.std == pytest.approx(float(np.sqrt(model.predict(pool[[pick.index]])[1][0, 0])), rel=1e-9)


def test_reasons_compare_with_the_best_in_terms_that_mean_something() -> None:
    """A percentage of a log10 value, or across zero, means nothing: those reasons give the difference instead."""
    from aloop.acquisition.policies import LogEI

    ei = LogEI()
    assert ei.reason(Maximize(units="V"), 0.44, 0.05, 0.4).endswith(", 10% above best 0.4")
    logged = ei.reason(Maximize(name="log10(PF_p)"), 2.44, 0.3, 2.77)
    assert logged.endswith(", 0.33 below best 2.77 in log10(PF_p) (a factor 2.1) (a worse mean: picked for its "
                           "uncertainty)"), logged
    assert ei.reason(Maximize(units="eV"), 0.1, 0.05, -0.2).endswith(", 0.3 above best -0.2")
    # Minimising, a higher mean is the worse side: the number's direction is kept and the reason said.
    assert ei.reason(Minimize(units="V"), 0.44, 0.05, -0.4).endswith(
        ", 10% above best 0.4 (a worse mean: picked for its uncertainty)")
    assert ei.reason(Minimize(units="V"), 0.36, 0.05, -0.4).endswith(", 10% below best 0.4")


def test_scalarized_log_ei_of_a_predict_only_surrogate_by_hand() -> None:
    """Without the surrogate's own scalarised variance: var(aᵀf) = Σ a_j² var_j, and the incumbent is max(Y @ a)."""
    from aloop.acquisition.policies import LogEI

    means = np.array([[0.2, 0.5], [0.9, 0.4], [0.5, 0.1], [0.7, 0.9]])
    variances = np.array([[0.04, 0.01], [0.09, 0.04], [0.01, 0.09], [0.04, 0.04]])

    class PredictOnly:
        n_features = 1

        def predict(self, X: np.ndarray, batch_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
            rows = np.asarray(X)[:, 0].astype(int)
            return means[rows], variances[rows]

        def noise_variance(self) -> np.ndarray:
            return np.array([1e-3, 1e-3])

    Y = np.array([[0.1, 0.3], [0.6, 0.5], [0.3, 0.05]])
    mo = MultiObjective([Maximize(output=0), Minimize(output=1)])
    a = ScalarizedLogEI().coefficients(mo, 2, Y)
    pick = propose(PredictOnly(), np.arange(4.0)[:, None], mo, "scalarized_log_ei", q=1, y_observed=Y)[0]
    scores = LogEI().score(means @ a, variances @ a**2, Maximize(), float((Y @ a).max()))
    assert pick.index == int(np.argmax(scores)) and pick.score == pytest.approx(scores.max())
    assert pick.std == pytest.approx(float(np.sqrt(variances[pick.index] @ a**2)))
