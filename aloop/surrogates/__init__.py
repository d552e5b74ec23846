"""Surrogates: BoTorch models (GP, ensembles, multi-output) fitted from arrays, with honest uncertainty."""

from aloop.surrogates.base import NotFittedError, SmallTargetWarning, Surrogate, check_training_data
from aloop.surrogates.ensemble import EnsembleSurrogate, MLPEnsembleSurrogate
from aloop.surrogates.finetuned import DeepKernelGP, ElemNetEnsembleSurrogate, fine_tune_elemnet
from aloop.surrogates.gp import GPSurrogate, UnseenFeatureWarning
from aloop.surrogates.mixture import GPForestMixture
from aloop.surrogates.metrics import calibration_curve, calibration_verdict, uncertainty_report
from aloop.surrogates.multitask import MultiTaskGPSurrogate
from aloop.surrogates.projection import PCAProjection
from aloop.surrogates.trees import TreeEnsembleSurrogate

__all__ = [
    "NotFittedError",
    "SmallTargetWarning",
    "Surrogate",
    "check_training_data",
    "DeepKernelGP",
    "ElemNetEnsembleSurrogate",
    "EnsembleSurrogate",
    "GPForestMixture",
    "GPSurrogate",
    "MLPEnsembleSurrogate",
    "MultiTaskGPSurrogate",
    "PCAProjection",
    "TreeEnsembleSurrogate",
    "UnseenFeatureWarning",
    "calibration_curve",
    "calibration_verdict",
    "fine_tune_elemnet",
    "uncertainty_report",
]
