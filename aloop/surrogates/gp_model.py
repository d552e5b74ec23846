"""Building the BoTorch GP behind ``GPSurrogate``: Matérn kernel priors, model defaults, hyperparameter transfer."""

from __future__ import annotations

import copy
import math
from typing import Literal

import numpy as np
import torch
from botorch.models import SingleTaskGP
from botorch.models.transforms.input import Normalize
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from gpytorch.constraints import GreaterThan
from gpytorch.kernels import MaternKernel
from gpytorch.priors import GammaPrior, LogNormalPrior
from torch import Tensor

LengthscalePrior = Literal["lognormal", "gamma"]


def _matern_kernel(k: int, m: int, lengthscale_prior: LengthscalePrior, sd: float | None = None) -> MaternKernel:
    """Matérn-5/2 ARD kernel over ``k`` inputs (batched over ``m`` outputs) with a dimension-scaled prior.

    Every prior has its mode at ``exp(√2 − 3)·√k`` (Hvarfner et al. 2024). ``"lognormal"``
    is BoTorch's LogNormal(√2 + ½ log k, √3), or with ``sd`` a LogNormal of that log-sd and the
    same mode (a small ``sd`` holds the lengthscales near it); ``"gamma"`` is a Gamma with
    concentration 3 (that of BoTorch's earlier Gamma(3, 6)) whose light right tail keeps the MAP
    fit from drifting to long lengthscales on few observations, i.e. wider intervals away from the data.
    """
    batch_shape = torch.Size([m]) if m > 1 else torch.Size()
    if lengthscale_prior == "lognormal" and sd is None:
        return get_covar_module_with_dim_scaled_prior(ard_num_dims=k, batch_shape=batch_shape, use_rbf_kernel=False)
    mode = math.exp(math.sqrt(2.0) - 3.0) * math.sqrt(k)
    prior = GammaPrior(3.0, 2.0 / mode) if lengthscale_prior == "gamma" else LogNormalPrior(math.log(mode) + sd**2, sd)
    return MaternKernel(
        nu=2.5,
        ard_num_dims=k,
        batch_shape=batch_shape,
        lengthscale_prior=prior,
        lengthscale_constraint=GreaterThan(2.5e-2, transform=None, initial_value=mode),
    )


def min_stdv(Y: Tensor | np.ndarray) -> float:
    """The smallest outcome spread standardised as it is (below it the outcome counts as constant, scale 1).

    BoTorch's fixed 1e-8 would treat a property measured in tiny units (a conductivity of 1e-9 S/cm
    varying by 1e-10) as constant and put unit-scale uncertainty on it; relative to the outcomes'
    magnitude, only rounding noise on a constant stays below it.
    """
    scale = float(np.nanmax(np.abs(np.asarray(Y)))) if np.size(Y) else 0.0
    return max(min(1e-8, 1e-8 * scale), 1e-300)


def _make_gp(Z: Tensor, Y: Tensor, bounds: Tensor, lengthscale_prior: LengthscalePrior,
             sd: float | None = None) -> SingleTaskGP:
    """``SingleTaskGP`` on ``n × k`` inputs and ``n × m`` outcomes with the aloop defaults (``sd``: see ``_matern_kernel``)."""
    k, m = Z.shape[-1], Y.shape[-1]
    return SingleTaskGP(
        Z,
        Y,
        covar_module=_matern_kernel(k, m, lengthscale_prior, sd),
        input_transform=Normalize(d=k, bounds=bounds),
        outcome_transform=Standardize(m=m, min_stdv=min_stdv(Y)),
    )


@torch.no_grad()
def _condition_on_all(fitted: SingleTaskGP, Z: Tensor, Y: Tensor, bounds: Tensor,
                      lengthscale_prior: LengthscalePrior, sd: float | None = None) -> SingleTaskGP:
    """A GP on all rows with the hyperparameters of ``fitted`` (a fit on a random subset of them),
    re-expressed for the standardisation of all rows: what ``fit(hyperparameters=...)`` rebuilds."""
    full = _make_gp(Z, Y, bounds, lengthscale_prior, sd)
    full.covar_module.load_state_dict(fitted.covar_module.state_dict())
    old, new = fitted.outcome_transform, full.outcome_transform
    ratio = (old.stdvs / new.stdvs).reshape(-1)  # m
    shift = ((old.means - new.means) / new.stdvs).reshape(-1)
    constant = fitted.mean_module.constant.reshape(-1) * ratio + shift
    full.mean_module.constant.copy_(constant.reshape_as(full.mean_module.constant))
    noise = fitted.likelihood.noise.reshape(-1) * ratio**2
    full.likelihood.noise = noise.clamp_min(1.01e-4).reshape_as(full.likelihood.noise)
    return full


@torch.no_grad()
def _condition_in_fitted_units(fitted: SingleTaskGP, Z: Tensor, Y: Tensor, bounds: Tensor,
                               lengthscale_prior: LengthscalePrior, sd: float | None = None) -> SingleTaskGP:
    """A GP on new rows with every hyperparameter of ``fitted`` in ``Y``'s units, its outcome standardisation included.

    Re-standardising on the new rows (as :func:`_condition_on_all` must for a subset fit) would silently make the
    signal variance the new rows' sample variance, since the kernel has no outputscale of its own: adding a
    campaign's best rows shrank it, and the posterior with it.
    """
    k, m = Z.shape[-1], Y.shape[-1]
    transform = copy.deepcopy(fitted.outcome_transform).eval()
    # Standardised here and attached after: SingleTaskGP would re-learn a transform it is given on the new rows.
    full = SingleTaskGP(Z, transform(Y)[0], covar_module=_matern_kernel(k, m, lengthscale_prior, sd),
                        input_transform=Normalize(d=k, bounds=bounds), outcome_transform=None)
    full.outcome_transform = transform
    full.covar_module.load_state_dict(fitted.covar_module.state_dict())
    full.mean_module.load_state_dict(fitted.mean_module.state_dict())
    full.likelihood.load_state_dict(fitted.likelihood.state_dict())
    return full


@torch.no_grad()
def _warm_start(gp: SingleTaskGP, old: SingleTaskGP) -> bool:
    """Start ``gp``'s lengthscales and noise from ``old``'s; False (nothing copied) if the shapes differ."""
    if old.covar_module.lengthscale.shape != gp.covar_module.lengthscale.shape:
        return False
    gp.covar_module.lengthscale = old.covar_module.lengthscale.detach().clone()
    gp.likelihood.noise = old.likelihood.noise.detach().clone()
    return True


def _load_hyperparameters(gp: SingleTaskGP, hyperparameters: dict[str, list]) -> None:
    """Set ``gp``'s raw parameters to saved values (from ``GPSurrogate.hyperparameters``)."""
    params = dict(gp.named_parameters())
    if set(hyperparameters) != set(params):
        raise ValueError(f"hyperparameters must give {sorted(params)}, got {sorted(hyperparameters)}")
    with torch.no_grad():
        for name, value in hyperparameters.items():
            params[name].copy_(torch.as_tensor(value, dtype=params[name].dtype).reshape(params[name].shape))
