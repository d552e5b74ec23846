"""Where a study's runs execute: in this process, in joblib processes on this machine, or as Ray tasks on a cluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, get_args

Backend = Literal["serial", "joblib", "ray"]
BACKENDS: tuple[str, ...] = get_args(Backend)

#: ``run_one(study, strategy, seed, workdir) -> record``: one replay (a module-level function, so it pickles).
RunOne = Callable[[Any, Any, int, "str | None"], dict[str, Any]]


def execute(run_one: RunOne, study: Any, jobs: Sequence[tuple[Any, int]], *, backend: str, n_jobs: int,
            ray_address: str | None, workdir: Callable[[Any, int], str | None]) -> Iterator[dict[str, Any]]:
    """Yield the record of each ``(strategy, seed)`` of ``jobs`` as it finishes, in any order.

    ``joblib`` runs ``n_jobs`` processes on this machine; ``ray`` one-CPU tasks on the cluster at
    ``ray_address`` (a local instance when none is given and none runs), each replaying in a temporary
    folder (workers may not share this file system); ``serial`` runs them here, one after another.
    """
    if backend == "ray":
        yield from _ray(run_one, study, jobs, ray_address)
    elif backend == "joblib" and n_jobs > 1 and len(jobs) > 1:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
        yield from parallel(delayed(run_one)(study, s, seed, workdir(s, seed)) for s, seed in jobs)
    else:
        for s, seed in jobs:
            yield run_one(study, s, seed, workdir(s, seed))


def _ray(run_one: RunOne, study: Any, jobs: Sequence[tuple[Any, int]], address: str | None) -> Iterator[dict[str, Any]]:
    """Yield records as Ray tasks finish (one CPU per task)."""
    from aloop.benchmark.task import ReplayError

    try:
        import ray
    except ImportError:
        raise ReplayError("backend 'ray' needs Ray: pip install 'ray>=2.9'") from None
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except ConnectionError as exc:
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ReplayError(f"cannot reach the Ray cluster at {address or 'this machine'} ({why}); check the "
                              "address and that `ray start --head` runs there, or use the joblib backend. "
                              "Finished runs are kept.") from None
    remote = ray.remote(num_cpus=1)(run_one)
    study_ref = ray.put(study)  # the pool goes to the object store once, not once per task
    pending = [remote.remote(study_ref, s, seed, None) for s, seed in jobs]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])
