"""ElemNet source models (shipped, or a user's own): safetensors weights + JSON model cards, export and loading."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from aloop import __version__
from aloop.atomic import temp_beside
from aloop.chem.elements import ELEMNET_ELEMENTS
from aloop.datasets import get_spec
from aloop.elemnet.model import DROPOUT_AFTER, ElemNet

#: The source models shipped with the package.
WEIGHTS_DIR = Path(__file__).parent / "weights"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class SourceModelError(LookupError):
    """A source model that is not available or whose files do not match their card."""


def user_sources_dir() -> Path:
    """Where a user's own source models live (``aloop export-source``): ``$ALOOP_SOURCES_DIR``, else
    ``$XDG_DATA_HOME/aloop/sources`` (``~/.local/share/aloop/sources``)."""
    if os.environ.get("ALOOP_SOURCES_DIR"):
        return Path(os.environ["ALOOP_SOURCES_DIR"]).expanduser()
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share").expanduser() / "aloop" / "sources"


def _names_in(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.safetensors") if p.with_suffix(".json").exists()}


def list_sources(weights_dir: Path | None = None) -> list[str]:
    """Names of the source models available (one ``NAME.safetensors`` + ``NAME.json`` each): the shipped
    ones and the user's (:func:`user_sources_dir`), or only those in ``weights_dir``."""
    if weights_dir is not None:
        return sorted(_names_in(weights_dir))
    return sorted(_names_in(WEIGHTS_DIR) | _names_in(user_sources_dir()))


def is_shipped(name: str) -> bool:
    """Whether ``name`` is a source model shipped with the package (not a user's own)."""
    return name in _names_in(WEIGHTS_DIR)


def _folder(name: str, weights_dir: Path | None) -> Path:
    """The folder holding source model ``name``: ``weights_dir``, else the shipped one, else the user's."""
    if weights_dir is not None:
        return weights_dir
    return WEIGHTS_DIR if is_shipped(name) or name not in _names_in(user_sources_dir()) else user_sources_dir()


def model_card(name: str, weights_dir: Path | None = None) -> dict:
    """The JSON model card of source model ``name``."""
    folder = _folder(name, weights_dir)
    path = folder / f"{name}.json"
    if not path.exists():
        where = folder if weights_dir is not None else f"{WEIGHTS_DIR} or {user_sources_dir()}"
        raise SourceModelError(
            f"no source model {name!r} in {where}; available: {', '.join(list_sources(weights_dir)) or 'none'}"
        )
    return json.loads(path.read_text())


def moe_experts(names: Iterable[str] | None = None, card: Callable[[str], dict] = model_card) -> tuple[str, ...]:
    """The default experts of a mixture: the source models not initialised from another (model card key
    ``initialised_from``).

    A chained source is trained on one JARVIS property with only the experimental band-gap sets
    excluded, so its training set holds other JARVIS tasks' test compositions. ``names`` default
    to the shipped source models (a user's own ones are experts only when named), ``card`` to
    their model cards.
    """
    names = list_sources(WEIGHTS_DIR) if names is None else names
    return tuple(n for n in names if not card(n).get("initialised_from"))


def weights_digest(name: str, weights_dir: Path | None = None) -> str:
    """sha256 of source model ``name``'s weights file: which version of the model a result used."""
    model_card(name, weights_dir)  # a clear error for a missing model
    path = _folder(name, weights_dir) / f"{name}.safetensors"
    stat = path.stat()
    return _file_sha256(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    """Hash once per file version (the mtime and size in the key notice a rewritten file)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@lru_cache(maxsize=16)
def _load_cached(name: str, weights_dir: str, digest: str) -> tuple[tuple[int, ...], dict[str, torch.Tensor]]:
    """The hidden widths and float32 weights of ``name``; ``digest`` (their sha256) makes a replaced file load afresh."""
    card = model_card(name, Path(weights_dir))
    state = {k: v.float() for k, v in load_file(Path(weights_dir) / f"{name}.safetensors").items()}
    return tuple(card["architecture"]["hidden_widths"]), state


def load_source_model(name: str, weights_dir: Path | None = None, trainable: bool = False) -> ElemNet:
    """Load source model ``name`` as a float32 ``ElemNet`` in eval mode, a copy of its own.

    Its parameters are frozen (``requires_grad`` off) unless ``trainable=True`` (for fine-tuning).
    Each call returns a new network, so changing one (its head, its weights) never changes another.
    """
    folder = _folder(name, weights_dir)
    widths, state = _load_cached(name, str(folder), weights_digest(name, folder))
    with torch.device("meta"):  # no random initialisation to throw away: the weights are assigned below
        net = ElemNet(dropout=False, hidden_widths=widths)
    net.load_state_dict({k: v.clone() for k, v in state.items()}, assign=True)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(trainable)
    return net


def _shipped_test_mae(path: Path, dataset: str, reference: dict, limit_rows: int | None = None) -> float:
    """Test MAE of the weights exactly as shipped (after fp16 rounding), on the published test split (its first
    ``limit_rows`` rows when the run was limited to them, as the run's own test MAE was)."""
    from aloop.chem import to_fraction_matrix
    from aloop.datasets import load

    net = ElemNet(hidden_widths=tuple(int(reference[f"hidden.{i}.weight"].shape[0]) for i in range(16)))
    net.load_state_dict({k: v.float() for k, v in load_file(path).items()})
    net.eval()
    test = load(dataset, split="test")
    if limit_rows:
        test = test.iloc[:limit_rows]
    X, bad = to_fraction_matrix(list(test["formula"]), errors="collect")
    keep = torch.ones(len(X), dtype=torch.bool)
    keep[[b.index for b in bad]] = False
    y = torch.as_tensor(test[next(iter(get_spec(dataset).targets))].to_numpy(), dtype=torch.float32)[keep]
    with torch.no_grad():
        pred = torch.cat([net(torch.from_numpy(X[keep.numpy()][i : i + 16384])).squeeze(1) for i in range(0, int(keep.sum()), 16384)])
    return float((pred - y).abs().mean())


def export_source_model(run_dir: str | Path, name: str, weights_dir: Path | None = None, fp16: bool = True,
                        replace: bool = False) -> Path:
    """Write ``run_dir``'s final network as source model ``name``: ``NAME.safetensors`` (fp16) and its
    model card ``NAME.json``, in ``weights_dir`` (default: :func:`user_sources_dir`).

    Raises:
        ValueError: ``name`` is not a plain file name, or ``run_dir`` holds no finished pre-training run.
        SourceModelError: ``name`` is shipped with the package (default folder only), or exists there
            and ``replace`` is false.
    """
    run_dir = Path(run_dir)
    if not _NAME.fullmatch(name):
        raise ValueError(f"source model name {name!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit")
    if weights_dir is None:
        if is_shipped(name):
            raise SourceModelError(f"{name!r} is a source model shipped with aloop; give yours another name")
        weights_dir = user_sources_dir()
    if not replace and (weights_dir / f"{name}.json").exists():
        raise SourceModelError(f"source model {name!r} already exists in {weights_dir}; choose another name, "
                               "or replace it (replace=True, `--replace`: its features, and campaigns using them, change)")
    missing = [f for f in ("summary.json", "final.pt") if not (run_dir / f).is_file()]
    if missing:
        raise ValueError(f"{run_dir} holds no finished pre-training run (no {' or '.join(missing)}); "
                         "run `aloop pretrain --run-dir` on it to the end first")
    summary = json.loads((run_dir / "summary.json").read_text())
    state = torch.load(run_dir / "final.pt", weights_only=True)["model"]
    weights_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.half() if fp16 else v).contiguous() for k, v in state.items()}
    # Both files are written under temporary names and renamed only once the card is complete, so an
    # interrupted export leaves the previous model (or none) whole.
    tmp_weights = temp_beside(weights_dir / f"{name}.safetensors")
    tmp_card = temp_beside(weights_dir / f"{name}.json")
    try:
        save_file(tensors, tmp_weights)
        _write_card(tmp_card, tmp_weights, name, summary, state, fp16)
        os.replace(tmp_weights, weights_dir / f"{name}.safetensors")
        os.replace(tmp_card, weights_dir / f"{name}.json")
    finally:
        tmp_weights.unlink(missing_ok=True)
        tmp_card.unlink(missing_ok=True)
    _load_cached.cache_clear()
    return weights_dir / f"{name}.safetensors"


def _write_card(path: Path, weights: Path, name: str, summary: dict, state: dict, fp16: bool) -> None:
    """Write to ``path`` the model card of ``weights``: the network ``state`` of a run with ``summary``."""
    config = summary["config"]
    spec = get_spec(config["dataset"])
    card = {
        "name": name,
        "aloop_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "architecture": {
            "type": "ElemNet (Jha et al. 2018, Sci. Rep. 8:17593)",
            "input": "atomic fractions over the element vocabulary",
            "hidden_widths": [int(state[f"hidden.{i}.weight"].shape[0]) for i in range(len([k for k in state if k.startswith('hidden.') and k.endswith('.weight')]))],
            "activation": "ReLU",
            "dropout_after_layer": {str(k): v for k, v in DROPOUT_AFTER.items()},
            "dropout_used_in_training": config["dropout"],
            "output": "1 (raw units; target standardisation folded into the output layer)",
            "weights_dtype": "float16" if fp16 else "float32",
        },
        "element_vocabulary": list(ELEMNET_ELEMENTS),
        "source_dataset": {
            "name": spec.name, "file": spec.path, "sha256": spec.sha256, "units": next(iter(spec.targets.values())),
            "citation": spec.citation, "valid_range": spec.valid_range,
        },
        "excluded_compositions": {
            "datasets": list(config["exclude"]),
            "rule": "every composition (canonical key) of these datasets removed from train and val; the published test split is kept whole",
        },
        "initialised_from": config.get("init_source") and {
            "source": config["init_source"], "sha256": summary.get("init_source_sha256"),
            "rule": "hidden layers copied from this source model, a fresh output layer",
        },
        "recipe": {k: v for k, v in config.items()
                   if k not in ("dataset", "exclude", "threads", "init_source") and not (k == "limit_rows" and v is None)},
        "seed": config["seed"],
        "data_sizes": {k: summary[k] for k in ("n_train", "n_val", "n_test")},
        "epochs_run": summary["epochs_run"],
        "schedule_changes": summary.get("schedule_changes", []),
        "best_epoch": summary["best_epoch"],
        "val_mae": summary["val_mae"],
        "test_mae_float32": summary["test_mae"],
        "test_mae": _shipped_test_mae(weights, config["dataset"], state, config.get("limit_rows")),
        "dead_unit_fraction_per_layer": summary["dead_unit_fraction"],
        "dead_unit_definition": "fraction of a hidden layer's units never active (> 0) on a "
                                f"{config.get('dead_sample', 20_000):,}-composition sample of the training set",
        "history": summary["history"],
    }
    with path.open("w") as fh:
        fh.write(json.dumps(card, indent=1))
        fh.flush()
        os.fsync(fh.fileno())
