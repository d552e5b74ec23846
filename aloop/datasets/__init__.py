"""Public datasets: the registry (origin, citation, license, units, sha256), the data directory, loaders."""

from aloop.datasets.load import DatasetError, data_dir, dataset_path, load, verify
from aloop.datasets.registry import DatasetSpec, get_spec, list_specs

__all__ = ["DatasetError", "DatasetSpec", "data_dir", "dataset_path", "get_spec", "list_specs", "load", "verify"]
