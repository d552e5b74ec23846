"""`aloop export-source`: a network trained with `aloop pretrain` becomes a --source from the shell."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from aloop.cli import app
from aloop.datasets import DatasetError, get_spec, verify

runner = CliRunner()


def invoke(*args: str):  # -> typer.testing.Result
    return runner.invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        verify(get_spec("oqmd-formation-enthalpy"))
    except DatasetError as exc:
        pytest.skip(f"needs dataset 'oqmd-formation-enthalpy': {exc}")
    run = tmp_path_factory.mktemp("pretrain") / "run"
    result = invoke("pretrain", "--run-dir", str(run), "--epochs", "1", "--limit-rows", "256",
                    "--batch-size", "128", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert f"aloop export-source {run} NAME" in " ".join(result.stdout.split())
    return run


def test_an_exported_network_is_listed_and_featurizes(finished_run: Path, tmp_path: Path) -> None:
    from aloop.elemnet.sources import load_source_model, model_card

    own = Path(os.environ["ALOOP_SOURCES_DIR"])
    result = invoke("export-source", str(finished_run), "my-fe")
    assert result.exit_code == 0, result.output
    assert "source model 'my-fe'" in result.stdout and "test MAE" in result.stdout
    assert sorted(p.name for p in own.iterdir()) == ["my-fe.json", "my-fe.safetensors"]  # no temporary file left
    assert model_card("my-fe")["source_dataset"]["name"] == "oqmd-formation-enthalpy"

    listing = invoke("sources")
    assert any(line.startswith("my-fe ") for line in listing.stdout.splitlines())
    assert f"yours (`aloop export-source`, in {own}): my-fe; the others ship with aloop" in listing.stdout

    table = tmp_path / "in.csv"
    pd.DataFrame({"formula": ["Fe2O3", "NaCl", "GaAs"]}).to_csv(table, index=False)
    out = tmp_path / "out.csv"
    result = invoke("featurize", str(table), "-f", "elemnet", "--source", "my-fe", "--layer", "2", "-o", str(out))
    assert result.exit_code == 0, result.output
    import torch

    from aloop.chem import to_fraction_matrix

    X, _ = to_fraction_matrix(["Fe2O3", "NaCl", "GaAs"])
    with torch.no_grad():
        expected = load_source_model("my-fe").activations(torch.from_numpy(X), layer=2).numpy()
    got = pd.read_csv(out).drop(columns="formula").to_numpy(float)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_export_refusals_leave_everything_as_it_was(finished_run: Path, tmp_path: Path) -> None:
    own = Path(os.environ["ALOOP_SOURCES_DIR"])
    assert invoke("export-source", str(finished_run), "mine").exit_code == 0
    before = {p.name: p.read_bytes() for p in own.iterdir()}

    def refused(*args: str, needle: str) -> None:
        result = invoke("export-source", *args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and needle in " ".join(result.stderr.split()), result.stderr
        assert {p.name: p.read_bytes() for p in own.iterdir()} == before

    refused(str(finished_run), "mine", needle="already exists")
    refused(str(finished_run), "oqmd-formation-enthalpy", needle="shipped with aloop; give yours another name")
    refused(str(finished_run), "../escape", needle="use letters, digits")
    refused(str(finished_run), "", needle="use letters, digits")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "checkpoint.pt").write_bytes(b"")
    refused(str(unfinished), "other", needle="holds no finished pre-training run")
    refused(str(tmp_path / "nowhere"), "other", needle="is not a folder")

    result = invoke("export-source", str(finished_run), "mine", "--replace")
    assert result.exit_code == 0, result.output


def test_a_replaced_source_rebuilds_campaign_features(finished_run: Path) -> None:
    """The campaign's featurizer identifier holds the weights' sha256, so replaced weights are not
    served from a stale feature cache."""
    from aloop.campaigns.config import FeaturizerConfig
    from aloop.campaigns.pool import resolve_featurizer
    from aloop.elemnet.sources import export_source_model, weights_digest

    export_source_model(finished_run, "mine")
    cfg = FeaturizerConfig(kind="elemnet", source="mine", layer=2)
    first = resolve_featurizer(cfg)[1]
    assert first == f"elemnet:mine:L2:{weights_digest('mine')[:12]}"
    export_source_model(finished_run, "mine", fp16=False, replace=True)  # other bytes, as a retrained network's
    assert resolve_featurizer(cfg)[1] != first
