"""What batch conditioning needs from a surrogate: candidate covariances and observation noise."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from aloop.acquisition.batch import CovFn
from aloop.acquisition.policies import Policy, Thompson


def noise_variance(surrogate: object, m: int) -> np.ndarray:
    """Observation-noise variance per output (``m``) from the contract's ``surrogate.noise_variance()``.

    Without it (a duck-typed surrogate), batch conditioning is noise-free and a warning says so.
    """
    noise = getattr(surrogate, "noise_variance", None)
    if callable(noise):
        noise = noise()
    if noise is None:
        warnings.warn(
            f"{type(surrogate).__name__} has no noise_variance(); batch conditioning believes points noise-free",
            stacklevel=3,
        )
        return np.zeros(m)
    noise = np.asarray(noise, dtype=np.float64).ravel()
    if noise.size == 1:
        noise = np.full(m, float(noise[0]))
    if noise.size != m or not np.isfinite(noise).all() or (noise < 0).any():
        raise ValueError(f"surrogate noise_variance must be {m} finite values ≥ 0, got {noise}")
    return noise


class MemberCov:
    """Empirical covariance of ensemble members (``s × N``) for id pairs; a Kriging believer on the ensemble."""

    def __init__(self, members: np.ndarray) -> None:
        self.mean = members.mean(axis=0)
        self.centred = members - self.mean
        self.dof = max(members.shape[0] - 1, 1)  # as the ensembles' own predict and covariance
        self.var = (self.centred**2).sum(axis=0) / self.dof

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.centred[:, a].T @ self.centred[:, b] / self.dof


def covariance_fn(surrogate: object, pol: Policy, rows: Callable[[np.ndarray], np.ndarray], coef: np.ndarray,
                  X_pool: np.ndarray, X_ext: np.ndarray, scalarized: bool = False) -> CovFn | None:
    """The latent covariance of ``coefᵀf`` between candidate ids (pool rows, then ``X_ext`` rows) that ``pol``
    conditions a batch on: the surrogate's own ``covariance`` (``scalarized_covariance`` for correlated
    outputs), else its ensemble members' empirical one; ``None`` when ``pol`` needs none.

    ``rows(ids)`` gives the feature rows of ids. ``ValueError`` when ``pol`` needs members and the
    surrogate has none, or (when called) when it conditions and the surrogate offers neither.
    """
    member_fn = getattr(surrogate, "member_predictions", None)

    def members() -> MemberCov:
        parts = [np.asarray(member_fn(X_pool), dtype=np.float64) @ coef]  # type: ignore[misc]
        if X_ext.shape[0]:
            parts.append(np.asarray(member_fn(X_ext), dtype=np.float64) @ coef)  # type: ignore[misc]
        return MemberCov(np.concatenate(parts, axis=1))

    if pol.needs_members:
        if member_fn is None:
            raise ValueError(f"policy {pol.name!r} needs an ensemble surrogate with member_predictions(X)")
        return members()
    if not pol.uses_variance:
        return None
    cov_fn = getattr(surrogate, "covariance", None)

    def cov(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if scalarized:
            return np.asarray(surrogate.scalarized_covariance(rows(a), rows(b), coef), dtype=np.float64)  # type: ignore[attr-defined]
        C = np.asarray(cov_fn(rows(a), rows(b)), dtype=np.float64)  # type: ignore[misc]
        return np.tensordot(coef**2, C.reshape(coef.size, len(a), len(b)), axes=1)

    try:
        if cov_fn is None and not scalarized:  # a duck-typed surrogate without covariance()
            raise NotImplementedError
        cov(np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64))
    except NotImplementedError:
        if member_fn is not None:
            return members()
        if isinstance(pol, Thompson):
            return None
        return _missing(surrogate)
    return cov


def _missing(surrogate: object) -> CovFn:
    """A covariance that refuses when first needed: one pick with nothing pending never asks for it."""

    def refuse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise ValueError(f"{type(surrogate).__name__} implements neither covariance nor member_predictions; "
                         "a batch of more than one, or pending experiments, need one of them")

    return refuse
