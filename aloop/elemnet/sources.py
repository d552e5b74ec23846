"""Shipped ElemNet source models: safetensors weights + JSON model cards, export and loading."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from aloop import __version__
from aloop.chem.elements import ELEMNET_ELEMENTS
from aloop.datasets import get_spec
from aloop.elemnet.model import DROPOUT_AFTER, ElemNet

WEIGHTS_DIR = Path(__file__).parent / "weights"


class SourceModelError(LookupError):
    """A source model that is not shipped or whose files do not match their card."""


def list_sources(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    """Names of the source models available (one ``NAME.safetensors`` + ``NAME.json`` each)."""
    return sorted(p.stem for p in weights_dir.glob("*.safetensors") if p.with_suffix(".json").exists())


def model_card(name: str, weights_dir: Path = WEIGHTS_DIR) -> dict:
    """The JSON model card of source model ``name``."""
    path = weights_dir / f"{name}.json"
    if not path.exists():
        raise SourceModelError(
            f"no source model {name!r} in {weights_dir}; available: {', '.join(list_sources(weights_dir)) or 'none'}"
        )
    return json.loads(path.read_text())


def moe_experts(names: Iterable[str] | None = None, card: Callable[[str], dict] = model_card) -> tuple[str, ...]:
    """The default experts of a mixture: the source models not initialised from another (model card key
    ``initialised_from``).

    A chained source is trained on one JARVIS property with only the experimental band-gap sets
    excluded, so its training set holds other JARVIS tasks' test compositions. ``names`` default
    to the shipped source models, ``card`` to their model cards.
    """
    names = list_sources() if names is None else names
    return tuple(n for n in names if not card(n).get("initialised_from"))


def weights_digest(name: str, weights_dir: Path = WEIGHTS_DIR) -> str:
    """sha256 of source model ``name``'s weights file: which version of the model a result used."""
    model_card(name, weights_dir)  # a clear error for a missing model
    path = weights_dir / f"{name}.safetensors"
    stat = path.stat()
    return _file_sha256(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    """Hash once per file version (the mtime and size in the key notice a rewritten file)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@lru_cache(maxsize=16)
def _load_cached(name: str, weights_dir: str) -> ElemNet:
    card = model_card(name, Path(weights_dir))
    state = {k: v.float() for k, v in load_file(Path(weights_dir) / f"{name}.safetensors").items()}
    net = ElemNet(dropout=False, hidden_widths=tuple(card["architecture"]["hidden_widths"]))
    net.load_state_dict(state)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def load_source_model(name: str, weights_dir: Path = WEIGHTS_DIR, trainable: bool = False) -> ElemNet:
    """Load source model ``name`` as a float32 ``ElemNet`` in eval mode.

    The shared cached copy is frozen; ``trainable=True`` returns an independent copy
    whose parameters require gradients (for fine-tuning).
    """
    net = _load_cached(name, str(weights_dir))
    if not trainable:
        return net
    copy = ElemNet(dropout=False, hidden_widths=net.hidden_widths)
    copy.load_state_dict(net.state_dict())
    return copy


def _shipped_test_mae(path: Path, dataset: str, reference: dict) -> float:
    """Test MAE of the weights exactly as shipped (after fp16 rounding), on the published test split."""
    from aloop.chem import to_fraction_matrix
    from aloop.datasets import load

    net = ElemNet(hidden_widths=tuple(int(reference[f"hidden.{i}.weight"].shape[0]) for i in range(16)))
    net.load_state_dict({k: v.float() for k, v in load_file(path).items()})
    net.eval()
    test = load(dataset, split="test")
    X, bad = to_fraction_matrix(list(test["formula"]), errors="collect")
    keep = torch.ones(len(X), dtype=torch.bool)
    keep[[b.index for b in bad]] = False
    y = torch.as_tensor(test[next(iter(get_spec(dataset).targets))].to_numpy(), dtype=torch.float32)[keep]
    with torch.no_grad():
        pred = torch.cat([net(torch.from_numpy(X[keep.numpy()][i : i + 16384])).squeeze(1) for i in range(0, int(keep.sum()), 16384)])
    return float((pred - y).abs().mean())


def export_source_model(run_dir: str | Path, name: str, weights_dir: Path = WEIGHTS_DIR, fp16: bool = True) -> Path:
    """Write ``run_dir``'s final network as ``NAME.safetensors`` (fp16) and its model card ``NAME.json``."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    state = torch.load(run_dir / "final.pt", weights_only=True)["model"]
    config = summary["config"]
    spec = get_spec(config["dataset"])
    weights_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.half() if fp16 else v).contiguous() for k, v in state.items()}
    save_file(tensors, weights_dir / f"{name}.safetensors")
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
            "rule": "hidden layers copied from this shipped source model, a fresh output layer",
        },
        "recipe": {k: v for k, v in config.items()
                   if k not in ("dataset", "exclude", "limit_rows", "threads", "init_source")},
        "seed": config["seed"],
        "data_sizes": {k: summary[k] for k in ("n_train", "n_val", "n_test")},
        "epochs_run": summary["epochs_run"],
        "schedule_changes": summary.get("schedule_changes", []),
        "best_epoch": summary["best_epoch"],
        "val_mae": summary["val_mae"],
        "test_mae_float32": summary["test_mae"],
        "test_mae": _shipped_test_mae(weights_dir / f"{name}.safetensors", config["dataset"], state),
        "dead_unit_fraction_per_layer": summary["dead_unit_fraction"],
        "dead_unit_definition": "fraction of a hidden layer's units never active (> 0) on a 20,000-composition sample of the training set",
        "history": summary["history"],
    }
    (weights_dir / f"{name}.json").write_text(json.dumps(card, indent=1))
    _load_cached.cache_clear()
    return weights_dir / f"{name}.safetensors"
