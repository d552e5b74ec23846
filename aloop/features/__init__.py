"""Featurizers: elemental fractions, Magpie statistics at array speed, ElemNet activations."""

from aloop.features.base import ElementFractions, Featurizer

__all__ = ["ElementFractions", "Featurizer"]
