"""The campaign definition file: template, round trip, and errors that name the field."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from aloop.campaigns import CampaignLog, ConfigError, load_config, parse_config, write_template
from aloop.campaigns.config import DEFAULT_SOURCE, FeaturizerConfig
from aloop.campaigns.modeling import make_objective, model_space
from campaign_definitions import minimal_definition


def test_template_is_valid_commented_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "zt.toml"
    cfg = write_template(path, name="zt", elements="Bi, Sb, Te", step=0.05, fixed={"O": 0.5}, bounds={"Bi": [0, 0.3]})
    text = path.read_text()
    assert text.count("#") > 10 and "# database_url" in text
    assert load_config(path) == cfg
    assert cfg.search_space.elements == ("Bi", "Sb", "Te") and cfg.search_space.fixed == {"O": 0.5}
    assert cfg.featurizer.kind == "elemnet" and cfg.featurizer.source == DEFAULT_SOURCE
    assert (cfg.surrogate.kind, cfg.acquisition.kind, cfg.initial_design.size) == ("gp", "ucb", cfg.batch_size)
    assert cfg.database_url == f"sqlite:///{tmp_path / 'zt.sqlite'}"
    cfg.save(tmp_path / "copy.toml")
    assert load_config(tmp_path / "copy.toml").to_dict() == cfg.to_dict()


def test_switching_the_featurizer_is_a_one_line_edit(tmp_path: Path) -> None:
    """The template always writes source and layer; kinds other than elemnet leave them unused."""
    path = tmp_path / "zt.toml"
    write_template(path, name="zt", elements="Bi, Sb, Te", step=0.1, featurizer="magpie", layer=4)
    assert load_config(path).featurizer == FeaturizerConfig("magpie", None, None)
    path.write_text(path.read_text().replace('kind = "magpie"', 'kind = "elemnet"'))
    assert load_config(path).featurizer == FeaturizerConfig("elemnet", DEFAULT_SOURCE, 4)
    path.write_text(path.read_text().replace('kind = "elemnet"', 'kind = "ef"'))
    assert load_config(path).featurizer == FeaturizerConfig("ef", None, None)


@pytest.mark.parametrize(("directions", "kind"), [
    (["maximize"], "ucb"), (["minimize"], "ucb"), (["target"], "log_ei"), (["window"], "window"),
    (["maximize", "minimize"], "log_ei"), (["maximize", "window"], "window"),
])
def test_default_acquisition_follows_the_objectives(directions: list[str], kind: str) -> None:
    from aloop.campaigns.config import default_acquisition

    assert default_acquisition(directions) == kind


def test_template_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("# mine\n")
    with pytest.raises(FileExistsError):
        write_template(path)
    assert path.read_text() == "# mine\n"


def test_template_with_bad_flags_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="objectives\\[0\\].direction: must be one of"):
        write_template(tmp_path / "c.toml", direction="maximise")
    with pytest.raises(ConfigError, match="unknown template option 'colour'"):
        write_template(tmp_path / "c.toml", colour="red")
    assert not (tmp_path / "c.toml").exists()


@pytest.mark.parametrize(("options", "message"), [
    ({"surrogate_options": {"n_componets": 3}}, "surrogate.options: .*n_componets"),
    ({"acquisition_options": {"beta": -1}}, "acquisition.options.beta: UCB beta must be a finite number ≥ 0, got -1"),
    ({"acquisition_options": {"beta": "x"}}, "acquisition.options.beta: UCB beta must be a finite number ≥ 0, got 'x'"),
    ({"acquisition_options": {"zzz": 1}}, "unknown option 'zzz' for kind 'ucb'; options there: beta, min_distance, "
                                          "shortlist, min_success$"),
    ({"acquisition_options": {"name": "x"}}, "unknown option 'name'"),  # a policy's class attribute, not an option
    ({"acquisition_options": {"min_success": 2.0}}, r"acquisition.options.min_success must be a probability in \[0, 1\)"),
    ({"acquisition_options": {"min_distance": -1.0}}, "acquisition.options.min_distance must be a feature-space distance"),
    ({"acquisition_options": {"shortlist": 0}}, "acquisition.options.shortlist must be a whole number"),
    ({"transform": "log2"}, "transform"),
])
def test_campaign_init_with_a_bad_option_leaves_nothing_behind(tmp_path: Path, options: dict, message: str) -> None:
    from aloop.campaigns import Campaign, CampaignError

    with pytest.raises(CampaignError, match=message):
        Campaign.init(tmp_path / "b.toml", elements=["Ni", "Fe"], step=0.1, objective="eta", units="V",
                      direction="minimize", **options)
    assert not list(tmp_path.iterdir())


def test_window_objective_selects_window_acquisition(tmp_path: Path) -> None:
    cfg = write_template(
        tmp_path / "gap.toml",
        name="gap",
        objective="band_gap",
        units="eV",
        direction="window",
        window=[1.2, 1.6],
        featurizer="magpie",
    )
    assert cfg.acquisition.kind == "window" and cfg.objectives[0].window == (1.2, 1.6)
    assert cfg.featurizer.layer is None


def test_candidate_list_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "pool.csv").write_text("id,composition\n1,Bi2Te3\n")
    cfg = write_template(
        tmp_path / "c.toml",
        name="pool",
        candidates_csv="pool.csv",
        formula_column="composition",
        database_url="sqlite:///logs/pool.sqlite",
    )
    assert cfg.search_space.kind == "candidates"
    assert cfg.database_url == f"sqlite:///{tmp_path / 'logs' / 'pool.sqlite'}"
    with pytest.raises(ConfigError, match="formula_column: 'formula' is not a column of pool.csv"):
        write_template(tmp_path / "d.toml", candidates_csv="pool.csv")
    with pytest.raises(ConfigError, match="candidates_csv: file not found"):
        write_template(tmp_path / "e.toml", candidates_csv="nope.csv")


def _base() -> dict:
    return minimal_definition()


BAD = [
    (
        lambda d: d["objectives"][0].update(direction="maximise"),
        "objectives[0].direction: must be one of maximize, minimize, target, window; got 'maximise'",
    ),
    (
        lambda d: d["objectives"][0].update(direction="target"),
        "objectives[0].target: required when direction = 'target'",
    ),
    (lambda d: d["objectives"][0].update(direction="window", window=[2, 1]), "objectives[0].window: must be [lo, hi]"),
    (lambda d: d["objectives"][0].update(target=1.0), "objectives[0].target: only allowed when direction = 'target'"),
    (lambda d: d["objectives"][0].pop("units"), "objectives[0].units: required"),
    (lambda d: d["objectives"].append(dict(d["objectives"][0])), "objectives[1].name: 'zT' is already the name"),
    (lambda d: d.pop("objectives"), "objectives: required"),
    (lambda d: d["objectives"][0].update(reference=0.5), "objectives[0].reference: only used with several objectives"),
    (
        lambda d: (d["objectives"][0].update(direction="target", target=1.4, reference=1.4),
                   d["objectives"].append({"name": "cost", "units": "EUR", "direction": "minimize", "reference": 9})),
        "objectives[0].reference: 1.4 is already a perfect value",
    ),
    (
        lambda d: (d["objectives"][0].update(reference=0.5),
                   d["objectives"].append({"name": "cost", "units": "EUR", "direction": "minimize"})),
        "objectives.reference: set it on every objective or on none (missing for cost)",
    ),
    (lambda d: d.update(name="my campaign"), "name: must start with a letter or digit"),
    (lambda d: d.update(batch_size=0), "batch_size: must be >= 1; got 0"),
    (lambda d: d.update(seed="one"), "seed: must be an integer; got 'one' (text)"),
    (lambda d: d.update(colour="red"), "colour: unknown field"),
    (lambda d: d["search_space"].update(elements=["Bi", "Xx"]), "search_space.elements[1]: 'Xx' is not an element"),
    (lambda d: d["search_space"].update(step=0.3), "search_space.step: 0.3 does not divide the free fraction 1"),
    (lambda d: d["search_space"].update(max_elements=5), "search_space.max_elements: 5 exceeds the 3 listed elements"),
    (lambda d: d["search_space"].update(bounds={"Bi": [0.5, 0.2]}), "search_space.bounds.Bi: must be [lo, hi]"),
    (lambda d: d["search_space"].update(bounds={"Cu": [0, 0.2]}), "search_space.bounds.Cu: 'Cu' is not one of"),
    (lambda d: d["search_space"].update(fixed={"O": 1.2}), "search_space.fixed.O: must be an atomic fraction"),
    (lambda d: d["search_space"].update(fixed={"Te": 0.5}), "search_space.fixed.Te: a fixed element cannot also be"),
    (lambda d: d["search_space"].update(candidates_csv="x.csv"), "search_space: give either elements"),
    (lambda d: d["search_space"].pop("step"), "search_space.step: required with elements"),
    (lambda d: d["search_space"].update(charge_balanced="yes"), "search_space.charge_balanced: must be true or false"),
    (
        lambda d: d.update(featurizer={"kind": "elemnet", "layer": 17}),
        "featurizer.layer: must be >= 1 and <= 16; got 17",
    ),
    (lambda d: d.update(featurizer={"kind": "magpie", "layer": 17}), "featurizer.layer"),
    (lambda d: d.update(featurizer={"kind": "soap"}), "featurizer.kind: must be one of elemnet, magpie, ef"),
    (lambda d: d.update(surrogate={"kind": "svm"}), "surrogate.kind: must be one of"),
    (lambda d: d.update(acquisition={"kind": "window"}), "acquisition.kind: 'window' needs an objective"),
    (lambda d: d.update(initial_design={"kind": "sobol"}), "initial_design.kind: must be one of random, diverse"),
    (lambda d: d.update(database_url="mysql://x/y"), "database_url: unsupported database 'mysql'"),
    (lambda d: d.update(database_url="sqlite://"), "database_url: a campaign log needs a SQLite file"),
    (lambda d: d.update(database_url="zt.sqlite"), "database_url: not a database URL: 'zt.sqlite'"),
]


@pytest.mark.parametrize(("edit", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_errors_name_the_field(edit, message: str) -> None:  # type: ignore[no-untyped-def]
    data = copy.deepcopy(_base())
    edit(data)
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert message in str(err.value)


def test_grid_bounds_and_step_are_fractions_of_the_whole_formula() -> None:
    """With oxygen fixed at 0.6, step 0.1 and Fe at most 0.2 mean whole-formula fractions (0.25 and 0.5 of the free
    part): Fe takes 0, 0.1 and 0.2, never more."""
    from aloop.campaigns.search_space import grid_space
    from aloop.chem import ELEMENT_INDEX

    data = _base()
    data["search_space"] = {"elements": ["Fe", "Ni"], "step": 0.1, "fixed": {"O": 0.6}, "bounds": {"Fe": [0.0, 0.2]}}
    grid = grid_space(parse_config(data).search_space)
    X = np.concatenate(list(grid.iter_chunks()))
    assert sorted(set(np.round(X[:, ELEMENT_INDEX["Fe"]], 6))) == [0.0, 0.1, 0.2]
    np.testing.assert_allclose(X[:, ELEMENT_INDEX["O"]], 0.6)
    assert grid.count() == len(X) == 3  # Ni0.4O0.6, Fe0.1Ni0.3O0.6, Fe0.2Ni0.2O0.6


@pytest.mark.parametrize(("bounds", "message"), [
    ([0.5, 0.6], "bounds for Fe: (0.5, 0.6): lo 0.5 is more than the 0.4 that the fixed O 0.6 leave(s) to the grid"),
    ([0.15, 0.18], "bounds for Fe: (0.15, 0.18) contain no grid point at step 0.1"),
])
def test_bad_bounds_beside_a_fixed_element_are_quoted_as_written(bounds: list[float], message: str) -> None:
    """They were quoted after the conversion to the free part: (1.25, 1.0), or (0.37499999999999994, 0.45) at step 0.25."""
    data = _base()
    data["search_space"] = {"elements": ["Fe", "Ni"], "step": 0.1, "fixed": {"O": 0.6}, "bounds": {"Fe": bounds}}
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert message in str(err.value) and "0.2499" not in str(err.value) and "0.3749" not in str(err.value), err.value


def test_a_step_need_only_divide_the_free_fraction() -> None:
    data = _base()
    data["search_space"] = {"elements": ["Fe", "Ni"], "step": 0.3, "fixed": {"O": 0.4}}  # 0.6 = 2 × 0.3
    assert parse_config(data).search_space.step == 0.3
    data["search_space"] = {"elements": ["Fe", "Ni"], "step": 0.2, "fixed": {"O": 0.5}}  # 0.5 / 0.2 = 2.5
    with pytest.raises(ConfigError, match="search_space.step: 0.2 does not divide the free fraction 0.5"):
        parse_config(data)


def test_every_problem_is_reported_at_once() -> None:
    data = _base()
    data["objectives"][0]["direction"] = "up"
    data["batch_size"] = -1
    data["search_space"]["elements"] = ["Zz"]
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert len(err.value.problems) == 3


def test_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_the_default_log_sits_beside_the_definition(tmp_path: Path) -> None:
    cfg = write_template(tmp_path / "zt.toml", name="zt")
    with CampaignLog.open(cfg.database_url, cfg.name, create=True, definition=cfg.to_dict()) as log:
        assert log.pending().empty
    assert (tmp_path / "zt.sqlite").exists()


def test_references_bound_the_hypervolume_in_utility_space() -> None:
    data = copy.deepcopy(_base())
    data["objectives"][0]["reference"] = 0.5
    data["objectives"].append({"name": "cost", "units": "EUR", "direction": "minimize", "reference": 100.0})
    config = parse_config(data)
    objective = make_objective(config, model_space(config)[0])
    assert list(objective.ref_point) == [0.5, -100.0]  # minimised: utility −cost
    data["objectives"][0].pop("reference"), data["objectives"][1].pop("reference")
    assert make_objective(parse_config(data), model_space(config)[0]).ref_point is None


def test_targets_and_windows_of_a_log10_objective_are_mapped_to_log10() -> None:
    """A surrogate of log10(sigma) must chase log10 of the target (2 for 100 S/cm), not 100 on its log scale."""
    data = copy.deepcopy(_base())
    data["objectives"][0].update(direction="target", target=100.0)
    data["surrogate"] = {"kind": "gp", "options": {"transform": "log10"}}
    config = parse_config(data)
    objective = make_objective(config, model_space(config)[0])
    assert objective.value == pytest.approx(2.0) and objective.name == "log10(zT)"
    data["objectives"][0] = {"name": "zT", "units": "", "direction": "window", "window": [0.01, 10.0]}
    config = parse_config(data)
    window = make_objective(config, model_space(config)[0])
    assert (window.lo, window.hi) == (pytest.approx(-2.0), pytest.approx(1.0))
