"""Definitions that would only fail later (at propose or record) are refused when written or read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aloop.campaigns import ConfigError, parse_config
from aloop.campaigns.search_space import MAX_GRID_CANDIDATES
from campaign_definitions import minimal_definition


def _data(space: dict | None = None, objective: dict | None = None, **top: object) -> dict:
    data = minimal_definition("c")
    data["search_space"].update(space or {})
    data["objectives"][0].update(objective or {})
    data.update(top)
    return data


def _problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    return err.value.problems


# --- search space size -----------------------------------------------------------------------------


def test_a_grid_above_the_limit_is_refused_with_its_count_and_how_to_shrink_it() -> None:
    elements = ["Ni", "Fe", "Co", "Mn", "Cu", "Zn", "Cr", "V", "Ti", "Al"]
    (problem,) = _problems(_data({"elements": elements, "step": 0.01, "max_elements": 5}))
    assert problem.startswith("search_space: the grid holds 982,147,627 compositions")
    assert f"limit of {MAX_GRID_CANDIDATES:,}" in problem
    for hint in ("larger step", "fewer elements", "lower max_elements", "bounds"):
        assert hint in problem
    # The same elements on a coarser grid are fine.
    assert parse_config(_data({"elements": elements, "step": 0.05, "max_elements": 3}))


def test_the_limit_counts_the_grid_as_bounds_and_fixed_elements_shape_it() -> None:
    elements = ["Ni", "Fe", "Co", "Mn", "Cu", "Zn"]
    (problem,) = _problems(_data({"elements": elements, "step": 0.01}))
    assert problem.startswith("search_space: the grid holds 96,560,646 compositions")
    assert parse_config(_data({"elements": elements, "step": 0.01, "fixed": {"O": 0.6}}))  # 1,221,759
    (problem,) = _problems(_data({"elements": elements, "step": 0.005}))
    assert problem.startswith("search_space: the grid holds 2,872,408,791 compositions")
    bounded = {el: [0.0, 0.02] for el in elements[1:]}
    assert parse_config(_data({"elements": elements, "step": 0.005, "bounds": bounded}))  # 3,125


def test_a_step_finer_than_composition_keys_is_refused() -> None:
    (problem,) = _problems(_data({"elements": ["Fe", "Ni"], "step": 0.00001}))
    assert problem == "search_space.step: must be at least 0.0001 (compositions are told apart to 4 decimals); got 1e-05"


def test_a_grid_that_cannot_hold_a_candidate_is_refused() -> None:
    (problem,) = _problems(_data({"bounds": {"Bi": [0.6, 1.0], "Sb": [0.6, 1.0]}}))
    assert problem.startswith("search_space: lower bounds sum to 1.2")


# --- objectives ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["notes", "formula", "proposal_id", "measured_at", "operator", "raw_data",
                                  "idempotency_key"])
def test_objective_names_of_results_file_columns_are_refused(name: str) -> None:
    (problem,) = _problems(_data(objective={"name": name}))
    assert problem.startswith(f"objectives[0].name: {name!r} is the name of a results-file column")


@pytest.mark.parametrize(("objective", "message"), [
    ({"name": " zT"}, "objectives[0].name: must not start or end with spaces; got ' zT'"),
    ({"units": "e[V]"}, "objectives[0].units: must not contain '[' or ']'"),
], ids=["name-with-space", "units-with-bracket"])
def test_objective_names_and_units_must_fit_a_results_header(objective: dict, message: str) -> None:
    assert _problems(_data(objective=objective)) == [message]


@pytest.mark.parametrize(("objective", "message"), [
    ({"direction": "window", "window": [2, 1]}, "objectives[0].window: must be [lo, hi] with finite numbers lo < hi"),
    ({"direction": "target", "target": "high"}, "objectives[0].target: must be a finite number"),
], ids=["window", "target"])
def test_an_invalid_window_or_target_is_not_also_reported_missing(objective: dict, message: str) -> None:
    (problem,) = _problems(_data(objective=objective))
    assert problem.startswith(message)


# --- surrogate options -----------------------------------------------------------------------------


@pytest.mark.parametrize(("surrogate", "message"), [
    ({"kind": "gp", "options": {"max_fit_rows": 0}}, "surrogate.options.max_fit_rows: must be >= 1; got 0"),
    ({"kind": "gp", "options": {"n_components": 2.5}}, "surrogate.options.n_components: must be an integer"),
    ({"kind": "ensemble", "options": {"n_estimators": 0}}, "surrogate.options.n_estimators: must be >= 1; got 0"),
    ({"kind": "gp_forest", "options": {"gp": {"max_fit_rows": 0}}},
     "surrogate.options.gp.max_fit_rows: must be >= 1; got 0"),
    ({"kind": "gp_forest", "options": {"forest": {"n_estimators": 1.5}}},
     "surrogate.options.forest.n_estimators: must be an integer"),
    ({"kind": "gp_forest", "options": {"forest": 200}}, "surrogate.options.forest: must be a table"),
], ids=["max_fit_rows", "n_components", "n_estimators", "gp_forest-gp", "gp_forest-forest", "gp_forest-not-a-table"])
def test_surrogate_count_options_are_checked_when_read(surrogate: dict, message: str) -> None:
    (problem,) = _problems(_data(surrogate=surrogate))
    assert problem.startswith(message)


def test_other_surrogate_options_pass_through() -> None:
    cfg = parse_config(_data(surrogate={"kind": "gp", "options": {"max_fit_rows": 50, "transform": "log10"}}))
    assert cfg.surrogate.options == {"max_fit_rows": 50, "transform": "log10"}


@pytest.mark.parametrize(("surrogate", "message"), [
    ({"kind": "gp", "options": {"transfrom": "log10"}},
     "surrogate.options: unknown option 'transfrom'; options there: transform, refit_growth, projection"),
    ({"kind": "ensemble", "options": {"n_trees": 5}}, "surrogate.options: unknown option 'n_trees'; options there: transform, kind"),
    ({"kind": "gp_forest", "options": {"gp": {"transform": "log10"}}},
     "surrogate.options.gp: unknown option 'transform' (transform belongs in [surrogate.options], for both parts)"),
    ({"kind": "gp_forest", "options": {"forest": {"n_trees": 5}}},
     "surrogate.options.forest: unknown option 'n_trees'; options there: kind, n_estimators"),
], ids=["gp-typo", "ensemble", "transform-in-a-part", "forest-part"])
def test_an_unknown_surrogate_option_is_named_with_its_table(surrogate: dict, message: str) -> None:
    from aloop.campaigns import CampaignError
    from aloop.campaigns.modeling import make_surrogate, model_space

    cfg = parse_config(_data(surrogate=surrogate))
    _, options = model_space(cfg)
    with pytest.raises(CampaignError) as err:
        make_surrogate(cfg, options)
    assert str(err.value).startswith(message)
    assert "__init__" not in str(err.value)


@pytest.mark.parametrize(("options", "expected"), [
    ({}, {"input_bounds": "pool", "lengthscale_sd": 0.15, "lengthscale_prior": "lognormal", "max_fit_rows": 400}),
    ({"input_bounds": "train", "lengthscale_sd": 1.7320508075688772, "max_fit_rows": 50},
     {"input_bounds": "train", "lengthscale_sd": 1.7320508075688772, "max_fit_rows": 50}),
    # The default log-sd belongs to the LogNormal prior: a Gamma prior does not get it (and is not refused).
    ({"lengthscale_prior": "gamma"}, {"lengthscale_prior": "gamma", "lengthscale_sd": None, "input_bounds": "pool"}),
], ids=["defaults", "overridden", "gamma"])
def test_a_campaign_gp_holds_its_lengthscales_near_the_mode_unless_told_otherwise(options: dict, expected: dict) -> None:
    from aloop.campaigns.modeling import make_surrogate, model_space

    cfg = parse_config(_data(surrogate={"kind": "gp", "options": options}))
    model = make_surrogate(cfg, model_space(cfg)[1])
    assert {k: getattr(model, k) for k in expected} == expected


def test_a_bad_lengthscale_option_is_refused_by_name() -> None:
    from aloop.campaigns import CampaignError
    from aloop.campaigns.modeling import make_surrogate, model_space

    for options, message in (({"lengthscale_sd": 0}, "lengthscale_sd must be a number in (0, 10)"),
                             ({"lengthscale_sd": 0.3, "lengthscale_prior": "gamma"}, "does not go with 'gamma'"),
                             ({"input_bounds": "box"}, "input_bounds must be 'train' or 'pool'")):
        cfg = parse_config(_data(surrogate={"kind": "gp", "options": options}))
        with pytest.raises(CampaignError, match=re.escape(message)):
            make_surrogate(cfg, model_space(cfg)[1])


# --- candidate files at init -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    ("formula\nFe2O3\nXy3\n", "1 formulas are invalid — fix or remove them: row 2 \\(line 3\\): 'Xy3': unknown element 'Xy'"),
    ("formula\n", "lists no candidates"),
    ("", "formula_column: 'formula' is not a column"),
], ids=["bad-formula", "no-rows", "empty-file"])
def test_init_refuses_a_candidate_file_that_propose_would_refuse(tmp_path: Path, text: str, message: str) -> None:
    from aloop.campaigns import Campaign, CampaignError

    (tmp_path / "pool.csv").write_text(text)
    with pytest.raises((CampaignError, ConfigError), match=message):
        Campaign.init(tmp_path / "c.toml", candidates_csv=tmp_path / "pool.csv", featurizer="ef")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pool.csv"]  # no definition, no log


def test_a_candidate_header_with_spaces_works_at_init_and_propose(tmp_path: Path) -> None:
    from aloop.campaigns import Campaign

    (tmp_path / "pool.csv").write_text("formula ,other\nFe2O3,1\nNiO,2\nCoO,3\n")
    with Campaign.init(tmp_path / "c.toml", candidates_csv=tmp_path / "pool.csv", featurizer="ef",
                       initial_design="random", progress=False) as campaign:
        batch = campaign.propose(2)
    assert len(batch) == 2 and set(batch["formula"]) <= {"Fe2O3", "NiO", "CoO"}
