"""The analytic marginal-likelihood closure gives BoTorch's loss and gradients, and falls back when it cannot."""

from __future__ import annotations

import gpytorch
import pytest
import torch
from _surrogate_cases import get_data
from botorch.models import SingleTaskGP
from botorch.optim.closures import get_loss_closure_with_grads
from botorch.optim.utils import get_parameters_and_bounds
from gpytorch.kernels import RBFKernel
from gpytorch.mlls import ExactMarginalLogLikelihood

from aloop.surrogates.gp import GPSurrogate, _make_gp
from aloop.surrogates.mll import matern_ard_closure


def _mll(split_name: str = "oer-raw", n: int = 120, prior: str = "lognormal") -> ExactMarginalLogLikelihood:
    data = get_data(split_name)
    X = torch.as_tensor(data.X_train[:n])
    Y = torch.as_tensor(data.y_train[:n, :1])
    bounds = torch.stack([X.min(0).values, X.max(0).values])
    bounds[1] = torch.where(bounds[1] - bounds[0] < 1e-8, bounds[0] + 1.0, bounds[1])
    gp = _make_gp(X, Y, bounds, prior)
    with torch.no_grad():  # move away from the prior mode so every gradient entry is non-trivial
        gen = torch.Generator().manual_seed(0)
        gp.covar_module.lengthscale = gp.covar_module.lengthscale * torch.exp(
            0.5 * torch.randn(gp.covar_module.lengthscale.shape, generator=gen, dtype=X.dtype))
        gp.likelihood.noise = torch.tensor([0.07])
        gp.mean_module.constant.fill_(0.3)
    return ExactMarginalLogLikelihood(gp.likelihood, gp).train()


@pytest.mark.parametrize("prior", ["lognormal", "gamma"])
def test_value_and_gradients_match_botorchs_autograd_closure(prior: str) -> None:
    mll = _mll(prior=prior)
    params = {k: p for k, p in get_parameters_and_bounds(mll)[0].items() if p.requires_grad}
    with gpytorch.settings.max_cholesky_size(10_000):
        ref_value, ref_grads = get_loss_closure_with_grads(mll, params)()
        ref_grads = [g.clone() for g in ref_grads]
    value, grads = matern_ard_closure(mll)()
    assert value.item() == pytest.approx(ref_value.item(), rel=1e-10)
    assert len(grads) == len(ref_grads) == 3
    for name, g, r in zip(params, grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-10, msg=name)


def test_fit_reaches_the_same_optimum_quality_as_the_default_closure(monkeypatch: pytest.MonkeyPatch) -> None:
    data = get_data("oer-raw")
    X, y = data.X_train[:150], data.y_train[:150]
    fast = GPSurrogate().fit(X, y)
    monkeypatch.setattr("aloop.surrogates.gp.matern_ard_closure", lambda mll: None)
    slow = GPSurrogate().fit(X, y)

    def loss(s: GPSurrogate) -> float:
        gp = s.gp.train()
        with gpytorch.settings.max_cholesky_size(10_000), torch.no_grad():
            return -ExactMarginalLogLikelihood(gp.likelihood, gp)(gp(*gp.train_inputs), gp.train_targets).item()

    # Both stop on L-BFGS's relative-reduction test along slightly different paths.
    assert loss(fast) <= loss(slow) + 5e-3


def test_unsupported_models_fall_back_to_botorch() -> None:
    data = get_data("oer-raw")
    X, Y = torch.as_tensor(data.X_train[:50]), torch.as_tensor(data.y_train[:50, :1])
    rbf = SingleTaskGP(X, Y, covar_module=RBFKernel(ard_num_dims=X.shape[-1]))
    assert matern_ard_closure(ExactMarginalLogLikelihood(rbf.likelihood, rbf)) is None
    two = SingleTaskGP(X, torch.cat([Y, 2 * Y], dim=-1))  # batched multi-output: BoTorch fits it per output
    assert matern_ard_closure(ExactMarginalLogLikelihood(two.likelihood, two)) is None


def test_a_matern_kernel_of_another_smoothness_falls_back_to_botorch() -> None:
    """The analytic gradient is Matérn-5/2's: a Matérn-3/2 model must keep BoTorch's closure."""
    from gpytorch.kernels import MaternKernel

    data = get_data("oer-raw")
    X, Y = torch.as_tensor(data.X_train[:50]), torch.as_tensor(data.y_train[:50, :1])
    rough = SingleTaskGP(X, Y, covar_module=MaternKernel(nu=1.5, ard_num_dims=X.shape[-1]))
    assert matern_ard_closure(ExactMarginalLogLikelihood(rough.likelihood, rough)) is None
    smooth = SingleTaskGP(X, Y, covar_module=MaternKernel(nu=2.5, ard_num_dims=X.shape[-1]))
    assert matern_ard_closure(ExactMarginalLogLikelihood(smooth.likelihood, smooth)) is not None
