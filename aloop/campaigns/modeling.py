"""Modelling choices of a campaign turned into objects: objective transforms, surrogates, policies, CV.

Everything here is stateless: the campaign (:mod:`aloop.campaigns.loop`) hands in its
definition and arrays and gets models, scores and indices back.

A definition may ask for the objectives to be modelled on a log scale with
``[surrogate] options = { transform = "log10" }`` (or ``{ PF_p = "log10" }`` per objective
inside ``transform``): the surrogate then learns ``log10(y)``, window and target bounds are
mapped the same way, predictions are stored as ``log10(<name>)`` and recorded values must be
positive.

Campaign defaults that differ from the surrogate's own (:data:`SURROGATE_DEFAULTS`; a definition's
``[surrogate.options]`` overrides each): the GP's hyperparameters are fitted on at most
``GP_MAX_FIT_ROWS`` observations (``max_fit_rows``), its inputs are scaled to the candidates' box
(``input_bounds = "pool"``) and its lengthscale prior is held near its mode (``lengthscale_sd = 0.15``;
``1.7320508075688772``, i.e. √3, with ``input_bounds = "train"`` is BoTorch's prior and box again).
``refit_growth = g`` (kinds gp and gp_forest) re-fits the hyperparameters only when the observations have grown
by a factor ``1 + g`` since the last such fit (starting the optimiser from the previous fit's
values) and otherwise conditions the GP on all observations with the previous hyperparameters —
what long replays use (default: refit from scratch every time).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any

import numpy as np

from aloop.acquisition import Maximize, Minimize, MultiObjective, Target, Window
from aloop.acquisition import Objective as AcqObjective
from aloop.acquisition.policies import Policy, known_policies
from aloop.acquisition.proposal import check_batch_options
from aloop.campaigns.config import GP_SURROGATE_KINDS, CampaignConfig
from aloop.campaigns.pool import CampaignError

TRANSFORMS = ("none", "log10")
#: Fewer observations than this never get a surrogate: the initial design continues.
MIN_OBSERVATIONS_TO_FIT = 3
#: Definition acquisition kinds → aloop.acquisition policy names (single objective).
POLICY_NAMES = {"log_ei": "log_ei", "ei": "log_ei", "ucb": "ucb", "thompson": "thompson", "greedy": "exploit",
                "random": "random", "window": "log_ei", "log_ehvi": "log_nehvi"}
#: A campaign refits its GP every round; hyperparameters are MAP-fitted on at most this many
#: observations (then the GP is conditioned on all). On the 105k-candidate benchmark with 1,008
#: observations (2 busy cores), the MAP fit took ~290 s on 800 rows (1,768 L-BFGS steps), 13 s on
#: 400 rows and 3.9 s on 200 rows (MAE on 5,000 held-out candidates 0.038 and 0.045; spread 0.34).
GP_MAX_FIT_ROWS = 400
#: The log-sd of a campaign GP's LogNormal lengthscale prior (BoTorch's mode kept, its √3 narrowed). Replaying
#: the OER plates, the band-gap window and the MP power factor, every task found its best compositions sooner with
#: it than with √3 (BENCHMARKS.md, session 26), at the price of lower interval coverage on unmeasured candidates.
GP_LENGTHSCALE_SD = 0.15
#: Options a campaign gives each surrogate kind unless its definition sets them.
SURROGATE_DEFAULTS: dict[str, dict[str, Any]] = {
    "gp": {"max_fit_rows": GP_MAX_FIT_ROWS, "input_bounds": "pool", "lengthscale_sd": GP_LENGTHSCALE_SD},
    "gp_forest": {"gp": {"max_fit_rows": GP_MAX_FIT_ROWS}},
    "ensemble": {},
}
#: Acquisition options that go to ``aloop.acquisition.propose`` rather than to the policy.
PROPOSE_OPTIONS = ("min_distance", "shortlist", "min_success")


@dataclass(frozen=True)
class ModelSpace:
    """How each objective is modelled: its name, transform and the label of predictions (``log10(PF_p)``)."""

    names: tuple[str, ...]
    transforms: tuple[str, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(n if t == "none" else f"{t}({n})" for n, t in zip(self.names, self.transforms, strict=True))

    def forward(self, Y: np.ndarray, rows: Sequence[str] | None = None) -> np.ndarray:
        """``n × m`` measured values → model space (raises ``CampaignError`` on values outside the domain,
        naming the offending ``rows`` when given, e.g. ``"measurement 6 (Ni0.5Fe0.5)"``)."""
        Y = np.asarray(Y, dtype=np.float64).reshape(len(Y), len(self.names))
        out = Y.copy()
        for j, t in enumerate(self.transforms):
            if t == "log10":
                bad = np.flatnonzero(Y[:, j] <= 0)
                if len(bad):
                    named = "" if rows is None else ": " + ", ".join(f"{rows[i]} = {Y[i, j]:g}" for i in bad[:5]) + \
                        (" …" if len(bad) > 5 else "")
                    raise CampaignError(f"{self.names[j]} is modelled as log10 but {len(bad)} recorded value(s) are "
                                        f"≤ 0{named}; retract wrong values (`aloop retract ID --reason …`) or drop the "
                                        f"log10 transform from the definition's [surrogate.options]")
                out[:, j] = np.log10(Y[:, j])
        return out

    def value(self, j: int, y: float, what: str) -> float:
        """One value of objective ``j`` (a window edge, target or reference) in model space."""
        if self.transforms[j] == "log10":
            if y <= 0:
                raise CampaignError(f"objectives.{self.names[j]}: {what} {y:g} must be > 0 for transform log10")
            return math.log10(y)
        return y


def model_space(config: CampaignConfig) -> tuple[ModelSpace, dict[str, Any]]:
    """The model space of a definition and the surrogate options left after taking out ``transform``."""
    options = dict(config.surrogate.options)
    spec = options.pop("transform", "none")
    names = config.objective_names
    if isinstance(spec, str):
        per = dict.fromkeys(names, spec)
    elif isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(names))
        if unknown:
            raise CampaignError(f"surrogate.options.transform: no objective {unknown[0]!r}; objectives: {', '.join(names)}")
        per = {n: spec.get(n, "none") for n in names}
    else:
        raise CampaignError(f"surrogate.options.transform: must be one of {', '.join(TRANSFORMS)} or a table; got {spec!r}")
    for n, t in per.items():
        if t not in TRANSFORMS:
            raise CampaignError(f"surrogate.options.transform ({n}): must be one of {', '.join(TRANSFORMS)}; got {t!r}")
    return ModelSpace(names, tuple(per[n] for n in names)), options


def refit_growth(config: CampaignConfig, options: dict[str, Any]) -> float | None:
    """Take ``refit_growth`` out of the surrogate options (a GP, alone or in gp_forest): refit hyperparameters at ×(1 + g) growth."""
    if "refit_growth" not in options:
        return None
    g = options.pop("refit_growth")
    if config.surrogate.kind not in GP_SURROGATE_KINDS:
        raise CampaignError(f"surrogate.options.refit_growth: only for kind = 'gp' or 'gp_forest', "
                            f"not {config.surrogate.kind!r}")
    if isinstance(g, bool) or not isinstance(g, int | float) or not math.isfinite(g) or g < 0:
        raise CampaignError(f"surrogate.options.refit_growth: must be a number ≥ 0, got {g!r}")
    return float(g)


def make_objective(config: CampaignConfig, space: ModelSpace) -> AcqObjective | MultiObjective:
    """The acquisition objective(s) of a definition, in model space (output ``j`` = objective ``j``)."""
    out: list[AcqObjective] = []
    for j, (o, label) in enumerate(zip(config.objectives, space.labels, strict=True)):
        units = o.units if space.transforms[j] == "none" else ""
        kw = {"output": j, "name": label, "units": units}
        if o.direction == "maximize":
            out.append(Maximize(**kw))
        elif o.direction == "minimize":
            out.append(Minimize(**kw))
        elif o.direction == "target":
            out.append(Target(space.value(j, float(o.target), "target"), **kw))  # type: ignore[arg-type]
        else:
            lo, hi = o.window  # type: ignore[misc]
            out.append(Window(space.value(j, lo, "window lower edge"), space.value(j, hi, "window upper edge"), **kw))
    if len(out) == 1:
        return out[0]
    refs = [o.reference for o in config.objectives]
    if any(r is None for r in refs):
        return MultiObjective(out)
    return MultiObjective(out, ref_point=[float(o.utility(np.array(space.value(j, float(r), "reference"))))  # type: ignore[arg-type]
                                          for j, (o, r) in enumerate(zip(out, refs, strict=True))])


def make_surrogate(config: CampaignConfig, options: Mapping[str, Any]) -> object:
    """A fresh (unfitted) surrogate of the definition's kind with its options."""
    from aloop.surrogates import GPForestMixture, GPSurrogate, TreeEnsembleSurrogate

    kind = config.surrogate.kind
    cls = {"gp": GPSurrogate, "ensemble": TreeEnsembleSurrogate, "gp_forest": GPForestMixture}[kind]
    opts = surrogate_options(kind, options)
    opts.setdefault("seed", config.seed)
    try:
        return cls(**opts)
    except TypeError as exc:
        raise CampaignError(_unknown_option(kind, cls, str(exc))) from None
    except ValueError as exc:
        raise CampaignError(f"surrogate.options: {exc}") from None


def surrogate_options(kind: str, options: Mapping[str, Any],
                      defaults: Mapping[str, Mapping[str, Any]] = SURROGATE_DEFAULTS) -> dict[str, Any]:
    """A definition's surrogate options with the campaign's ``defaults`` for ``kind`` filled in.

    The default ``lengthscale_sd`` belongs to the LogNormal prior, so a definition that picks
    ``lengthscale_prior = "gamma"`` does not get it.
    """
    opts = dict(options)
    for key, value in defaults.get(kind, {}).items():
        if key == "lengthscale_sd" and opts.get("lengthscale_prior", "lognormal") != "lognormal":
            continue
        if isinstance(value, dict) and isinstance(opts.get(key, {}), Mapping):
            opts[key] = {**value, **opts.get(key, {})}
        else:
            opts.setdefault(key, value)
    return opts


def filled_defaults(kind: str, options: Mapping[str, Any],
                    defaults: Mapping[str, Mapping[str, Any]] = SURROGATE_DEFAULTS) -> dict[str, Any]:
    """The options :func:`surrogate_options` adds to or changes in ``options`` (what a campaign fills in)."""
    own = dict(options)
    return {k: v for k, v in surrogate_options(kind, own, defaults).items() if own.get(k) != v}


def _unknown_option(kind: str, cls: type, message: str) -> str:
    """A surrogate's refusal of an option, as the definition's table and key that hold it."""
    import inspect

    from aloop.surrogates import GPSurrogate, TreeEnsembleSurrogate

    table, owner = "surrogate.options", cls
    for part, part_cls in (("gp", GPSurrogate), ("forest", TreeEnsembleSurrogate)):
        if message.startswith(f"GPForestMixture {part} options: "):
            table, owner = f"surrogate.options.{part}", part_cls
    key = re.search(r"unexpected keyword argument '([^']+)'", message)
    if key is None:
        return f"{table}: {message}"
    known = [p for p in inspect.signature(owner.__init__).parameters if p != "self"]
    where = " (transform belongs in [surrogate.options], for both parts)" if key[1] == "transform" and owner is not cls else ""
    if owner is cls:
        known = ["transform", "refit_growth", *known] if kind in GP_SURROGATE_KINDS else ["transform", *known]
    return f"{table}: unknown option {key[1]!r}{where}; options there: {', '.join(known)}"


def make_policy(config: CampaignConfig, multi: bool, linear: bool) -> tuple[Policy, dict[str, Any]]:
    """The acquisition policy of a definition and the extra keyword arguments of ``propose``."""
    kind = config.acquisition.kind
    name = POLICY_NAMES[kind]
    if multi and kind in ("log_ei", "ei"):
        name = "scalarized_log_ei" if linear else "log_nehvi"
    elif multi and kind not in ("log_ehvi", "random"):
        raise CampaignError(
            f"acquisition.kind: {kind!r} handles one objective; with {len(config.objectives)} use 'log_ei' or 'log_ehvi'"
        )
    elif not multi and kind == "log_ehvi":
        raise CampaignError("acquisition.kind: 'log_ehvi' needs at least two objectives; use 'log_ei'")
    options = dict(config.acquisition.options)
    extra = {k: options.pop(k) for k in PROPOSE_OPTIONS if k in options}
    try:
        check_batch_options(**extra)
    except ValueError as exc:  # its message starts with the option's name
        raise CampaignError(f"acquisition.options.{exc}") from None
    cls = known_policies()[name]
    fields = [f.name for f in dataclass_fields(cls) if f.init]
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise CampaignError(f"acquisition.options: unknown option {unknown[0]!r} for kind {kind!r}; options there: "
                            f"{', '.join([*fields, *PROPOSE_OPTIONS])}")
    for key, value in options.items():  # one at a time, so the message names the option at fault
        try:
            cls(**{key: value})
        except (TypeError, ValueError) as exc:
            raise CampaignError(f"acquisition.options.{key}: {exc}") from None
    try:
        return cls(**options), extra
    except (TypeError, ValueError) as exc:
        raise CampaignError(f"acquisition.options: {exc}") from None


def fit_surrogate(make: Callable[[], object], X: np.ndarray, Y: np.ndarray, X_pool: np.ndarray | None,
                  warm_start: object | None = None, hyperparameters: dict | None = None) -> object:
    """Fit a new surrogate; a GP also gets (a sample of) the pool to fit its PCA projection on.

    ``warm_start``: a previous GP of the campaign whose hyperparameters start the fit;
    ``hyperparameters``: a GP's recorded values, loaded instead of fitted.
    """
    model = make()
    from aloop.surrogates import GPForestMixture, GPSurrogate

    if isinstance(model, GPSurrogate | GPForestMixture):
        warm = warm_start if isinstance(warm_start, GPSurrogate | GPForestMixture) else None
        return model.fit(X, Y, X_pool=X_pool, warm_start=warm, hyperparameters=hyperparameters)
    return model.fit(X, Y)  # type: ignore[attr-defined]


def replicate_means(keys: Sequence[str], X: np.ndarray, Y: np.ndarray,
                    space: ModelSpace | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One row per composition (``k × d``, ``k × m``), replicate measurements averaged.

    The incumbent of EI/PI and the hypervolume baseline read these, so one lucky replicate of a
    noisy measurement does not stand for its composition. With ``space``, ``Y`` is in model space and
    is averaged in measured units (the mean of 1 and 100 is 50.5, not 10 as the mean of their log10),
    as ``status`` reports it.
    """
    uniq, first, inverse = np.unique(np.asarray(keys, dtype=object), return_index=True, return_inverse=True)
    if uniq.size == len(keys):
        return X, Y
    raw = Y if space is None else np.where(np.array(space.transforms) == "log10", 10.0**Y, Y)
    sums = np.zeros((uniq.size, Y.shape[1]))
    np.add.at(sums, inverse.ravel(), raw)
    means = sums / np.bincount(inverse.ravel(), minlength=uniq.size)[:, None]
    return X[first], means if space is None else space.forward(means)


def pool_sample(features: np.ndarray, size: int = 20_000, seed: int = 0) -> np.ndarray:
    """A deterministic sample of pool rows (for unsupervised steps such as PCA and k-means)."""
    if len(features) <= size:
        return np.asarray(features)
    rows = np.sort(np.random.default_rng(seed).choice(len(features), size, replace=False))
    return np.asarray(features[rows])


def data_digest(event_ids: Sequence[int], setup: Mapping[str, Any]) -> str:
    """Identity of a training set and the modelling set-up: equal digests, same model."""
    doc = {"events": [int(i) for i in event_ids], "setup": setup}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Modelling:
    """Everything the definition's modelling choices turn into, each checked (``modelling``)."""

    space: ModelSpace
    surrogate_options: dict[str, Any]
    refit_growth: float | None
    objective: AcqObjective | MultiObjective
    raw_objective: AcqObjective | MultiObjective  # the same on the objectives' own scale
    policy: Policy
    propose_options: dict[str, Any]


def modelling(config: CampaignConfig) -> Modelling:
    """The definition's transforms, surrogate, objective and policy, built once so a typo in any option is a
    ``CampaignError`` before a campaign is created or opened (never as late as the first fit)."""
    space, options = model_space(config)
    growth = refit_growth(config, options)
    raw = ModelSpace(space.names, ("none",) * len(space.names))
    linear = all(o.direction in ("maximize", "minimize") for o in config.objectives)
    policy, propose_options = make_policy(config, len(config.objectives) > 1, linear)
    make_surrogate(config, options)
    return Modelling(space, options, growth, make_objective(config, space), make_objective(config, raw), policy,
                     propose_options)


@dataclass(frozen=True)
class CVResult:
    """Out-of-fold Gaussian predictions of every observation (model space) and their scores per objective."""

    labels: tuple[str, ...]
    y: np.ndarray  # n × m observed (model space)
    mean: np.ndarray  # n × m
    std: np.ndarray  # n × m predictive std (latent + noise)
    folds: int
    metrics: dict[str, dict[str, float]]
    groups: np.ndarray  # n composition labels: replicates share one


def cross_validate(make: Callable[[], object], X: np.ndarray, Y: np.ndarray, groups: Sequence[str],
                   labels: Sequence[str], X_pool: np.ndarray | None = None, k: int = 5, seed: int = 0,
                   progress: bool | None = None) -> CVResult | None:
    """Grouped k-fold CV (replicates of one composition stay in one fold); ``None`` below 5 observations
    or 3 compositions."""
    from sklearn.model_selection import GroupKFold
    from tqdm.auto import tqdm

    from aloop.acquisition import noise_variance
    from aloop.surrogates import uncertainty_report

    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    if len(Y) < 5 or n_groups < 3:
        return None
    folds = min(k, n_groups)
    # GroupKFold is deterministic; shuffling the group labels makes folds seed-dependent, not order-dependent.
    codes = np.unique(groups, return_inverse=True)[1]
    perm = np.random.default_rng(seed).permutation(n_groups)[codes]
    mean, std = np.empty_like(Y), np.empty_like(Y)
    splits = list(GroupKFold(n_splits=folds).split(X, Y, perm))
    for train, test in tqdm(splits, disable=None if progress is None else not progress, leave=False,
                            desc=f"{folds}-fold cross-validation"):
        model = fit_surrogate(make, X[train], Y[train], X_pool)
        mu, var = model.predict(X[test])  # type: ignore[attr-defined]
        noise = noise_variance(model, Y.shape[1])
        mean[test] = mu
        std[test] = np.sqrt(np.maximum(var + noise, 1e-300))
    metrics = {lab: uncertainty_report(Y[:, j], mean[:, j], std[:, j]) for j, lab in enumerate(labels)}
    return CVResult(tuple(labels), Y, mean, std, folds, metrics, groups)


def batch_seed(seed: int, batch_no: int) -> int:
    """The seed of batch ``batch_no`` (1, 2, …) of a campaign seeded ``seed``: one independent stream per batch.

    ``seed + batch_no`` would give campaign ``s`` in batch ``b + 1`` the stream of campaign ``s + 1``
    in batch ``b``, so replays with consecutive seeds would repeat each other's random picks one
    batch apart. Batch 1 keeps ``seed + 1``, so existing campaigns and replays keep their initial design.
    """
    if batch_no == 1:
        return seed + 1
    return int(np.random.SeedSequence([seed, batch_no]).generate_state(1)[0])
