"""Synthesis feasibility: a classifier of success vs. recorded failure whose probability scales acquisition values.

Failed syntheses and vetoed compositions are the negatives, successful measurements the
positives, on the same features the surrogate uses. ``log_prob(X)`` is added to
log-scale acquisition values (multiplying EI by ``P(success)``, as constrained EI does);
see :func:`aloop.acquisition.batch.feasibility_transform` for signed scores.

With only one class recorded there is nothing to learn: the model is the constant
Laplace estimate ``(successes + 1) / (n + 2)``, which shifts every score equally.

>>> import numpy as np
>>> model = FeasibilityModel().fit(np.zeros((3, 2)), np.array([True, True, True]))
>>> round(float(model.prob(np.zeros((1, 2)))[0]), 2)
0.8
"""

from __future__ import annotations

import warnings
from typing import Self

import numpy as np
from scipy.spatial.distance import pdist
from sklearn.base import ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.ensemble import RandomForestClassifier
from sklearn.gaussian_process import GaussianProcessClassifier
from sklearn.gaussian_process.kernels import RBF, ConstantKernel
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

METHODS = ("auto", "gp", "random_forest", "logistic")
#: Candidates less likely than this to be made are not proposed while enough others are left (``propose``'s
#: ``min_success``; a campaign's ``[acquisition.options] min_success``). Below one half, since far from any
#: outcome the GP classifier returns to 1/2 and unexplored compositions must stay proposable.
MIN_SUCCESS = 0.3
#: ``method="auto"`` fits the GP classifier up to this many outcomes (its cost grows as n³), a forest above.
GP_MAX_OUTCOMES = 1000
#: Components the GP classifier's inputs are projected to (PCA of the outcomes' standardised features):
#: distances in a few directions stay local, and scoring a million candidates stays cheap.
GP_COMPONENTS = 16
#: The GP classifier's kernel hyperparameters are fitted on at most this many outcomes (a random subset of each
#: class in proportion); it then conditions on every outcome with them. Each step of the Laplace fit costs n³ and
#: the hyperparameter search takes many steps: on all outcomes, 969 of them made a campaign's propose take 40 s and
#: its status (which cross-validates the model) two minutes.
GP_FIT_ROWS = 300


class FeasibilityModel:
    """Probability that a candidate's synthesis succeeds, from recorded successes and failures.

    Args:
        method: ``"auto"`` (default: ``"gp"`` up to ``GP_MAX_OUTCOMES`` outcomes, else
            ``"random_forest"``), ``"gp"`` (sklearn's GP classifier, an RBF kernel with a lengthscale
            per input on the standardised features, or on their first ``GP_COMPONENTS`` principal
            components when there are more: failures lower the probability near them and far away
            it returns towards 1/2),
            ``"random_forest"`` (sigmoid-calibrated when each class has at least 3 examples) or
            ``"logistic"`` (standardised logistic regression: one boundary across the whole space,
            so it cannot keep a failing region local; a failure can lower compositions far from it).
        min_prob: probabilities are clipped to ``[min_prob, 1]`` so one confident
            classifier cannot send a score to ``-inf``.
    """

    def __init__(self, method: str = "auto", min_prob: float = 1e-4, random_state: int = 0) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown feasibility method {method!r}; known: {', '.join(METHODS)}")
        if not 0.0 < min_prob < 1.0:
            raise ValueError(f"min_prob must lie in (0, 1), got {min_prob}")
        self.method, self.min_prob, self.random_state = method, min_prob, random_state
        self.classifier_: ClassifierMixin | None = None
        self.constant_: float | None = None
        self.n_features_: int | None = None

    def _make(self, n_minority: int, X: np.ndarray) -> ClassifierMixin:
        n, d = X.shape
        method = self.method if self.method != "auto" else ("gp" if n <= GP_MAX_OUTCOMES else "random_forest")
        if method == "logistic":
            return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
        if method == "gp":  # one lengthscale per input: a boundary along one element stays sharp
            k = max(1, min(GP_COMPONENTS, n - 1)) if d > GP_COMPONENTS else d
            project = [PCA(n_components=k, random_state=self.random_state)] if d > GP_COMPONENTS else []
            # The lengthscales start at the outcomes' median distance: from a fixed 1, wide features (hundreds of
            # standardised ElemNet activations) put every pair of outcomes so far apart that the kernel vanished,
            # its gradients too, and the fit stayed where it started, at P(success) = 1/2 everywhere.
            Z = make_pipeline(StandardScaler(), *clone(project)).fit_transform(X)
            distances = pdist(Z)
            start = float(np.median(distances[distances > 0])) if (distances > 0).any() else 1.0
            # A bounded amplitude: on separable outcomes it grows without end, and the latent variance it implies
            # pulls every probability off the training points back to 1/2.
            kernel = ConstantKernel(1.0, constant_value_bounds=(1e-2, 10.0)) * RBF(length_scale=np.full(k, start))
            return make_pipeline(StandardScaler(), *project,
                                 GaussianProcessClassifier(kernel, random_state=self.random_state))
        forest = RandomForestClassifier(n_estimators=200, min_samples_leaf=2, random_state=self.random_state, n_jobs=1)
        if n_minority >= 3:
            return CalibratedClassifierCV(forest, method="sigmoid", cv=min(3, n_minority))
        return forest

    def fit(self, X: np.ndarray, succeeded: np.ndarray) -> Self:
        """Fit on ``n × d`` features and ``n`` booleans (``False`` = failed or vetoed)."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(succeeded)
        if X.ndim != 2 or y.shape != (X.shape[0],):
            raise ValueError(f"need X of shape n × d and one outcome per row, got {X.shape} and {y.shape}")
        if X.shape[0] == 0:
            raise ValueError("no synthesis outcomes to fit a feasibility model on")
        if not np.isfinite(X).all():
            raise ValueError(f"feasibility features have {int((~np.isfinite(X)).sum())} NaN/inf entries")
        if y.dtype != bool and not np.isin(y, (0, 1)).all():
            raise ValueError("succeeded must hold booleans (True = synthesis worked)")
        y = y.astype(bool)
        self.n_features_ = X.shape[1]
        n_ok, n_fail = int(y.sum()), int((~y).sum())
        if n_ok == 0 or n_fail == 0:
            self.classifier_, self.constant_ = None, (n_ok + 1.0) / (y.size + 2.0)
            return self
        self.constant_ = None
        model = self._make(min(n_ok, n_fail), X)
        with warnings.catch_warnings():  # the GP's amplitude sits at its bound on purpose (see _make)
            warnings.simplefilter("ignore", ConvergenceWarning)
            if isinstance(model, Pipeline) and isinstance(model[-1], GaussianProcessClassifier) and y.size > GP_FIT_ROWS:
                Z = model[:-1].fit_transform(X, y)  # the scaler (and projection) of the pipeline, on every outcome
                sub = self._fit_rows(y)
                tuned = clone(model[-1]).fit(Z[sub], y[sub])
                final = GaussianProcessClassifier(tuned.kernel_, optimizer=None, random_state=self.random_state)
                model.steps[-1] = (model.steps[-1][0], final.fit(Z, y))
            else:
                model.fit(X, y)
        self.classifier_ = model
        return self

    def _fit_rows(self, y: np.ndarray) -> np.ndarray:
        """``GP_FIT_ROWS`` of the outcomes ``y``, drawn per class in proportion (each class keeps at least 2)."""
        rng = np.random.default_rng(self.random_state)
        rows = []
        for cls in (False, True):
            members = np.flatnonzero(y == cls)
            k = min(members.size, max(2, round(GP_FIT_ROWS * members.size / y.size)))
            rows.append(rng.choice(members, k, replace=False))
        return np.sort(np.concatenate(rows))

    @classmethod
    def from_records(cls, X_success: np.ndarray, X_failed: np.ndarray, **kwargs: object) -> FeasibilityModel:
        """Fit from two feature arrays: successes and failures (vetoed compositions count as failures)."""
        X_success = np.asarray(X_success, dtype=np.float64)
        X_failed = np.asarray(X_failed, dtype=np.float64)
        shapes = [a.shape for a in (X_success, X_failed) if a.size]
        if any(len(sh) != 2 for sh in shapes) or len({sh[1] for sh in shapes}) > 1:
            raise ValueError(f"X_success and X_failed must be n × d feature arrays of one width d, got shapes "
                             f"{X_success.shape} and {X_failed.shape}")
        d = X_success.shape[1] if X_success.ndim == 2 else X_failed.shape[1]
        X = np.vstack([X_success.reshape(-1, d), X_failed.reshape(-1, d)])
        y = np.r_[np.ones(X_success.shape[0], dtype=bool), np.zeros(X_failed.shape[0], dtype=bool)]
        return cls(**kwargs).fit(X, y)  # type: ignore[arg-type]

    def prob(self, X: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """``N × d`` → ``N`` success probabilities in ``[min_prob, 1]``, chunked."""
        if self.n_features_ is None:
            raise RuntimeError("FeasibilityModel is not fitted; call fit(X, succeeded) first")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_:
            raise ValueError(f"feasibility model was fitted on {self.n_features_} features, got array of shape {X.shape}")
        if self.classifier_ is None:
            return np.full(X.shape[0], max(self.constant_ or 1.0, self.min_prob))
        out = np.empty(X.shape[0])
        col = list(self.classifier_.classes_).index(True)
        for a in range(0, X.shape[0], batch_size):
            out[a : a + batch_size] = self.classifier_.predict_proba(np.asarray(X[a : a + batch_size], np.float64))[:, col]
        return np.clip(out, self.min_prob, 1.0)

    def log_prob(self, X: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """``N × d`` → ``N`` log success probabilities."""
        return np.log(self.prob(X, batch_size))


#: Fewest failures (and successes) the feasibility cross-validation needs: one per fold, at least two folds.
MIN_CV_CLASS = 2


def cross_validate_feasibility(X: np.ndarray, succeeded: np.ndarray, groups: np.ndarray | None = None, k: int = 5,
                               random_state: int = 0, **options: object) -> dict[str, object] | None:
    """Is P(success) calibrated? Out-of-fold probabilities scored against the outcomes; ``None`` if too few.

    Stratified k-fold (grouped by ``groups``, e.g. composition keys, so a retried composition never sits on
    both sides of a split) with ``k`` folds, fewer when a class has fewer outcomes. Returns ``outcomes``,
    ``failures``, ``folds``; the Brier score of the out-of-fold ``P(success)`` and of the training folds'
    base rate (the score of a model that knows nothing about compositions); ``mean_p_success`` against the
    ``success_rate`` observed (calibration in the large); and a ``verdict``.

    Args:
        X: ``n × d`` features of the outcomes.
        succeeded: ``n`` booleans (``False`` = failed or vetoed).
        options: passed to :class:`FeasibilityModel` (``method``, ``min_prob``).
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(succeeded).astype(bool)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"need X of shape n × d and one outcome per row, got {X.shape} and {y.shape}")
    if groups is not None and np.asarray(groups).shape != y.shape:
        raise ValueError(f"groups must label each of the {y.size} outcomes, got shape {np.asarray(groups).shape}")
    n_fail, n_ok = int((~y).sum()), int(y.sum())
    folds = min(k, n_fail, n_ok)
    if folds < MIN_CV_CLASS:
        return None
    if groups is None:
        splits = StratifiedKFold(folds, shuffle=True, random_state=random_state).split(X, y)
    else:
        splits = StratifiedGroupKFold(folds, shuffle=True, random_state=random_state).split(X, y, np.asarray(groups))
    p, base = np.empty(y.size), np.empty(y.size)
    for train, test in splits:
        model = FeasibilityModel(random_state=random_state, **options).fit(X[train], y[train])  # type: ignore[arg-type]
        p[test] = model.prob(X[test])
        base[test] = y[train].mean()
    brier, brier_base = float(np.mean((p - y) ** 2)), float(np.mean((base - y) ** 2))
    verdict = ("better than the base rate" if brier < brier_base
               else f"no better than the base rate ({n_fail} failures and {n_ok} successes may be too few to learn from)")
    return {"outcomes": int(y.size), "failures": n_fail, "folds": folds, "brier": brier, "brier_base_rate": brier_base,
            "mean_p_success": float(p.mean()), "success_rate": float(y.mean()), "verdict": verdict}
