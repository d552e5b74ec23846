"""Featurizers: elemental fractions, Magpie statistics at array speed, ElemNet activations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aloop.features.base import ElementFractions, Featurizer
from aloop.features.elemnet import ElemNetFeatures
from aloop.features.magpie import MAGPIE_PROPERTIES, MAGPIE_STATS, MagpieFeaturizer

#: Registry name → factory (a ``Featurizer`` subclass or any callable taking keyword options).
FEATURIZERS: dict[str, Callable[..., Featurizer]] = {
    ElementFractions.name: ElementFractions,
    MagpieFeaturizer.name: MagpieFeaturizer,
    ElemNetFeatures.name: ElemNetFeatures,
}


def get_featurizer(name: str, **kwargs: Any) -> Featurizer:
    """Build the featurizer registered as ``name`` (``"ef"``, ``"magpie"``, …) with ``kwargs``.

    Raises:
        ValueError: ``name`` is not registered (the message lists the known names).
    """
    try:
        factory = FEATURIZERS[name]
    except KeyError:
        known = ", ".join(repr(k) for k in sorted(FEATURIZERS))
        raise ValueError(f"unknown featurizer {name!r}; known featurizers: {known}") from None
    return factory(**kwargs)


__all__ = [
    "FEATURIZERS",
    "MAGPIE_PROPERTIES",
    "MAGPIE_STATS",
    "ElemNetFeatures",
    "ElementFractions",
    "Featurizer",
    "MagpieFeaturizer",
    "get_featurizer",
]
