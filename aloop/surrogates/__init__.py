"""Surrogates: BoTorch models (GP, ensembles, multi-output) fitted from arrays, with honest uncertainty."""

from aloop.surrogates.base import NotFittedError, Surrogate, check_training_data

__all__ = ["NotFittedError", "Surrogate", "check_training_data"]
