"""The featurizer protocol: compositions (formulas or an ``n × 86`` fraction matrix) → ``n × d`` features."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from aloop.chem import ELEMNET_ELEMENTS, N_ELEMENTS, check_formula_batch, to_fraction_matrix


#: Rows per block when validating fraction matrices (bounds the temporary masks' memory on large pools).
_CHECK_ROWS = 65536
#: How far a row's sum may stray from 1 before it is rescaled (float32 fractions sum to 1 within ~1e-6).
_SUM_TOLERANCE = 1e-5


def check_fractions(X: np.ndarray, who: str) -> np.ndarray:
    """Validate an ``n × 86`` matrix of elemental fractions (or amounts) and return it as fractions.

    Every row must be finite and nonnegative. Rows of amounts (``Fe2O3`` as 2, 3) are divided
    by their sums, so every featurizer sees the same fractions; all-zero rows (the placeholder
    ``to_fraction_matrix(errors="collect")`` leaves for a formula it could not parse) stay zero.
    The input is returned as is (as a floating array) when it already holds fractions.
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != N_ELEMENTS:
        raise ValueError(f"{who}: fraction matrix must be n × {N_ELEMENTS}, got shape {X.shape}")
    X = X if np.issubdtype(X.dtype, np.floating) else X.astype(np.float64)
    rescale = []
    for start in range(0, X.shape[0], _CHECK_ROWS):
        block = X[start : start + _CHECK_ROWS]
        sums = block.sum(axis=1, dtype=np.float64)
        bad = ~np.isfinite(sums) | (block < 0).any(axis=1)
        if bad.any():
            rows = start + np.flatnonzero(bad)
            raise ValueError(f"{who}: negative or non-finite fractions in {rows.size} rows, e.g. rows "
                             f"{rows[:10].tolist()}")
        rescale.extend((start + np.flatnonzero((np.abs(sums - 1.0) > _SUM_TOLERANCE) & (sums > 0))).tolist())
    if rescale:
        X = X.copy()
        X[rescale] /= X[rescale].sum(axis=1, keepdims=True)
    return X


def fraction_frame(frame: Any, who: str) -> np.ndarray:
    """The ``n × 86`` fractions of a DataFrame, in the element order of ``aloop.chem.ELEMNET_ELEMENTS``.

    Columns named by element symbol (any order, e.g. alphabetical or matminer's) are put in that order;
    unnamed columns (``0 … 85``) are taken as they stand. Any other names are refused: taking them by
    position would silently mix up elements.
    """
    names = [str(c) for c in frame.columns]
    if sorted(names) == sorted(ELEMNET_ELEMENTS):
        return frame[[frame.columns[names.index(e)] for e in ELEMNET_ELEMENTS]].to_numpy()
    if list(frame.columns) == list(range(N_ELEMENTS)):
        return frame.to_numpy()
    unknown = [n for n in names if n not in ELEMNET_ELEMENTS][:3]
    raise ValueError(f"{who}: a DataFrame of fractions needs its {N_ELEMENTS} columns named by element symbol "
                     f"(any order; aloop.chem.ELEMNET_ELEMENTS) or unnamed (0 … {N_ELEMENTS - 1}), got columns such as "
                     f"{', '.join(map(repr, unknown or names[:3]))}; taking them by position could mix up elements")


def as_numeric_matrix(X: object, who: str) -> np.ndarray:
    """``X`` (an array, a frame or nested lists of numbers) as a float32 array; text, such as formulas, is
    refused with a pointer to ``aloop.chem.to_fraction_matrix``. A frame of 86 columns is read by element
    name (:func:`fraction_frame`)."""
    if hasattr(X, "columns") and len(X.columns) == N_ELEMENTS:  # type: ignore[attr-defined]
        X = fraction_frame(X, who)
    try:
        return np.asarray(X, dtype=np.float32)
    except (TypeError, ValueError):
        values = np.asarray(X, dtype=object).ravel()
        example = next((v for v in values[:1000] if isinstance(v, str)), values[0] if values.size else None)
        raise ValueError(f"{who} takes an n × {N_ELEMENTS} matrix of elemental fractions, got {example!r} in it; "
                         f"turn formulas into one with aloop.chem.to_fraction_matrix(formulas)") from None


class Featurizer(ABC):
    """Turns compositions into a feature matrix.

    Every featurizer works from the ``n × 86`` elemental-fraction matrix, so formulas are
    parsed once and large candidate pools (already held as fraction matrices) skip parsing.
    Subclasses implement ``transform_fractions`` and ``feature_names``.
    """

    #: Short registry name (``"ef"``, ``"magpie"``, ``"elemnet"``) used by the CLI and configs.
    name: str = ""

    @property
    @abstractmethod
    def feature_names(self) -> list[str]:
        """Names of the ``d`` output columns."""

    @abstractmethod
    def transform_fractions(self, X: np.ndarray) -> np.ndarray:
        """``n × 86`` float32 fractions (rows sum to 1) → ``n × d`` float32 features."""

    def transform(self, compositions: Sequence[str] | np.ndarray) -> np.ndarray:
        """Formulas (all bad rows reported at once) or an ``n × 86`` fraction matrix → ``n × d``.

        The matrix may be a numpy array, a torch tensor or a DataFrame of 86 numeric columns.
        """
        if type(compositions).__module__.startswith("torch"):  # a tensor of fractions, not of formulas
            compositions = compositions.detach().cpu().numpy()  # type: ignore[union-attr]
        elif (hasattr(compositions, "select_dtypes") and compositions.shape[1] == N_ELEMENTS  # type: ignore[union-attr]
              and compositions.select_dtypes("number").shape[1] == N_ELEMENTS):  # type: ignore[union-attr]
            compositions = fraction_frame(compositions, f"{type(self).__name__}.transform")
        if isinstance(compositions, np.ndarray) and compositions.ndim == 2:
            if compositions.shape[1] != N_ELEMENTS:
                raise ValueError(
                    f"{type(self).__name__}: fraction matrix must have {N_ELEMENTS} columns, got {compositions.shape[1]}"
                )
            return self.transform_fractions(np.asarray(compositions, dtype=np.float32))
        if isinstance(compositions, np.ndarray) and compositions.ndim == 1 and compositions.dtype.kind == "f":
            raise ValueError(f"{type(self).__name__}.transform: a 1-D array of numbers is not a list of formulas; "
                             f"give one composition's fractions as a 1 × {N_ELEMENTS} matrix (x[None, :])")
        check_formula_batch(compositions, f"{type(self).__name__}.transform")
        X, _ = to_fraction_matrix(compositions, errors="raise")
        return self.transform_fractions(X)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The construction options, by name (scikit-learn's protocol: ``clone`` and grid searches use it)."""
        names = [name for name, p in inspect.signature(type(self).__init__).parameters.items()
                 if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params: Any) -> Featurizer:
        """Change construction options in place (e.g. ``layer=5``), rebuilding the featurizer as its
        constructor would; options it does not take are refused, and a refused value leaves it unchanged."""
        current = self.get_params(deep=False)
        unknown = sorted(set(params) - set(current))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no option {', '.join(map(repr, unknown))}; its options: "
                             f"{', '.join(current) or 'none'}")
        rebuilt = type(self)(**{**current, **params})
        self.__dict__.clear()
        self.__dict__.update(rebuilt.__dict__)
        return self


class ElementFractions(Featurizer):
    """The 86 elemental fractions themselves (ElemNet's input; "EF" in Gupta et al.)."""

    name = "ef"

    @property
    def feature_names(self) -> list[str]:
        return [f"frac_{el}" for el in ELEMNET_ELEMENTS]

    def transform_fractions(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(check_fractions(X, type(self).__name__), dtype=np.float32)


def _formula_list(X: object) -> list[str] | None:
    """``X`` as a list of formulas when it is one column of text (list, 1-D or n × 1 array, Series, frame), else None."""
    if hasattr(X, "columns"):
        if X.shape[1] != 1:  # type: ignore[attr-defined]
            return None
        X = X.iloc[:, 0]  # type: ignore[attr-defined]
    if isinstance(X, np.ndarray):
        if X.dtype.kind not in "OUS" or X.ndim > 2 or (X.ndim == 2 and X.shape[1] != 1):
            return None
        X = X.ravel()
    values = list(X) if isinstance(X, list | tuple | np.ndarray) or hasattr(X, "to_numpy") else None
    return values if values and any(isinstance(v, str) for v in values) else None  # a NaN may come first


class FeaturizerTransformer(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: formulas, or an ``n × 86`` fraction matrix → a featurizer's ``n × d`` features.

    Lets any featurizer feed any scikit-learn regressor in a ``Pipeline``, e.g. ElemNet
    layer-2 activations into extra trees (feature-extraction transfer learning). The
    featurizer's options are nested parameters, so a grid search can tune them, e.g.
    ``{"featurizertransformer__featurizer__layer": [1, 2, 8]}``. Formulas may come as a list,
    a 1-D array or Series of text, or a one-column frame (``df[["formula"]]``).
    """

    def __init__(self, featurizer: Featurizer) -> None:
        self.featurizer = featurizer

    def fit(self, X: np.ndarray, y: object = None) -> FeaturizerTransformer:
        """Nothing to learn: the featurizer is fixed; returns ``self``."""
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Formulas or ``n × 86`` fractions → ``n × d`` features."""
        if not isinstance(self.featurizer, Featurizer):
            raise TypeError(f"FeaturizerTransformer needs a Featurizer, e.g. get_featurizer('magpie'), got "
                            f"{self.featurizer!r}")
        if (formulas := _formula_list(X)) is not None:
            return self.featurizer.transform(formulas)  # every bad formula is named at once
        return self.featurizer.transform(as_numeric_matrix(X, type(self).__name__))

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """The featurizer's ``d`` column names."""
        return np.asarray(self.featurizer.feature_names, dtype=object)
