"""Cluster runs on Dask.

Why so small: a Dask cluster is just another ``concurrent.futures.Executor`` to the folder runner, so what is
cluster-specific is: connect, check that every worker would produce the same tables (same fer_batch, same model
bytes, the same inputs and output folder), and size each task's onnxruntime threads to its worker. Long videos are
spread by ``fer_batch.runs.segments``, on any executor.

``distributed`` is imported only inside the functions that need it: the core install does not pull it in.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from fer_batch._version import __version__
from fer_batch.analysis.models import cores
from fer_batch.errors import ClusterError, describe
from fer_batch.options import Options

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0  # how long the driver waits for the scheduler (and for a first worker)


# --- connecting and checking -----------------------------------------------------------------------------------
def connect(address: str, timeout: float | None = None) -> Any:
    """A ``distributed.Client`` for the scheduler at ``address``, with at least one worker, or ``ClusterError``."""
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError('--scheduler needs Dask: pip install ".[dask]" (from the clone)') from None
    try:
        client = Client(address, timeout=f"{timeout}s", set_as_default=False)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError, ValueError) as e:
        reason = describe(e)
        raise ClusterError(f"scheduler {address}: not reachable within {timeout:g} s ({reason})") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (OSError, TimeoutError):
        client.close()  # type: ignore[no-untyped-call]
        raise ClusterError(f"scheduler {address}: no worker joined within {timeout:g} s") from None
    return client


def _host(address: str) -> str:
    return urlparse(address).hostname or address


def worker_report(files: list[tuple[str, int]], out: str, options: Options) -> dict[str, Any]:
    """What a worker sees: its fer_batch version, model checksums, the inputs and the output folder.

    Runs on every worker (``client.run``) before any work is sent; the driver compares the answers with its own.
    A plain dict on purpose, not a dataclass: it is the one value that crosses between versions, and a worker
    running another fer_batch must still be able to say which (a class of its version might not unpickle here).
    """
    from fer_batch.analysis.models import choose_providers, file_sha256, load_manifest, models_dir, resolve
    from fer_batch.errors import ModelError

    report: dict[str, Any] = {"version": __version__, "host": socket.gethostname(), "cores": cores()}
    try:
        folder = models_dir()
        report["models"] = {
            e["id"]: file_sha256((folder / e["file"]).resolve()) if (folder / e["file"]).is_file() else "missing"
            for e in load_manifest()
        }
    except (ModelError, OSError, ValueError) as e:
        report["models"] = {"error": str(e)}
    if options.classification.model_spec is not None or options.classification.model.endswith(".onnx"):
        try:
            report["custom_model"] = resolve(
                options.classification.model, options.classification.model_spec, task="emotion"
            ).sha256
        except (ModelError, OSError, ValueError) as e:
            report["custom_model"] = f"error: {e}"
    try:
        report["provider"] = choose_providers(options.runtime.device)[0]
    except ModelError as e:
        report["provider_error"] = str(e)
    missing = []
    for path, size in files:
        try:
            if os.stat(path).st_size != size:
                missing.append(f"{path} (different size)")
        except OSError:
            missing.append(path)
    report["missing_inputs"] = missing[:3]
    report["missing_count"] = len(missing)
    target = Path(out)
    while not target.exists() and target != target.parent:  # --out may not exist yet: its nearest existing folder
        target = target.parent
    if not target.is_dir() or not os.access(target, os.W_OK | os.X_OK):
        report["out_error"] = f"cannot write to {target}"
    return report


def check_cluster(client: Any, files: list[Path], out: Path, options: Options) -> dict[str, int]:
    """Compare every worker with the driver; raise ``ClusterError`` on the first mismatch, else return slots per host.

    Slots per host (worker threads on each machine) let each task size its onnxruntime threads.
    """
    mine = worker_report([], str(out), options)
    listed = [(str(f.resolve()), f.stat().st_size) for f in files]
    try:
        reports = client.run(worker_report, listed, str(Path(out).resolve()), options, on_error="return")
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"cluster check failed: {e}") from None
    if not reports:
        raise ClusterError("the cluster has no workers")
    for worker, rep in sorted(reports.items()):
        if isinstance(rep, BaseException):
            raise ClusterError(f"worker {worker}: cannot run fer_batch ({type(rep).__name__}: {rep})")
        problem = _mismatch(rep, mine)
        if problem:
            raise ClusterError(f"worker {worker}: {problem}")
    info = client.scheduler_info(n_workers=-1) if _takes_n_workers(client) else client.scheduler_info()
    slots: dict[str, int] = {}
    for address, w in info.get("workers", {}).items():
        slots[_host(address)] = slots.get(_host(address), 0) + int(w.get("nthreads", 1))
    providers = sorted({rep.get("provider", "?") for rep in reports.values()})
    log.info("workers: %d on %d hosts; onnxruntime runs on %s", len(reports), len(slots), ", ".join(providers))
    return slots


def _takes_n_workers(client: Any) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def _mismatch(rep: dict[str, Any], mine: dict[str, Any]) -> str | None:
    if rep.get("version") != mine["version"]:
        return f"has fer_batch {rep.get('version')}, the driver {mine['version']}"
    if "error" in rep.get("models", {}):
        return f"models: {rep['models']['error']}"
    for model_id, sha in mine["models"].items():
        theirs = rep.get("models", {}).get(model_id)
        if theirs in (None, "missing"):
            return f"model {model_id} is missing"
        if theirs != sha:
            return f"model {model_id} has sha256 {str(theirs)[:12]}…, the driver's is {sha[:12]}…"
    if "custom_model" in mine and rep.get("custom_model") != mine["custom_model"]:
        return f"custom model differs ({rep.get('custom_model')})"
    if "provider_error" in rep:
        return str(rep["provider_error"])
    if rep.get("missing_count"):
        more = f" and {rep['missing_count'] - 3} more" if rep["missing_count"] > 3 else ""
        return f"cannot see {rep['missing_count']} input(s): {', '.join(rep['missing_inputs'])}{more}"
    if "out_error" in rep:
        return f"--out: {rep['out_error']}"
    return None


class ClusterExecutor(Executor):
    """A Dask client's executor whose tasks size their onnxruntime threads to their worker's share of its host."""

    def __init__(self, inner: Executor, slots: dict[str, int]) -> None:
        self.inner, self.slots = inner, slots

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self.inner.submit(on_worker, fn, self.slots, *args, **kwargs)

    def shutdown(self, wait: bool = True, **_: Any) -> None:
        self.inner.shutdown(wait=wait)


def worker_threads(slots: dict[str, int]) -> int:
    """onnxruntime threads for one task: this machine's cores over the worker threads (task slots) it runs."""
    try:
        from distributed import get_worker

        worker = get_worker()
        mine = worker.state.nthreads
        on_host = slots.get(_host(worker.address), mine)
    except (ImportError, ValueError, AttributeError):  # not inside a Dask worker
        on_host = 1
    return max(1, cores() // max(on_host, 1))


def on_worker(fn: Callable[..., Any], slots: dict[str, int], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` with every ``Options`` argument that leaves threads open sized for this worker."""
    threads = worker_threads(slots)
    args = tuple(
        a.replace(threads=threads) if isinstance(a, Options) and a.runtime.threads is None else a for a in args
    )
    return fn(*args, **kwargs)


def prepare_executor(executor: Executor, files: list[Path], out: Path, options: Options) -> Executor:
    """Check the cluster behind a Dask executor and wrap it; ``ClusterError`` before anything is written."""
    if isinstance(executor, ClusterExecutor):
        return executor
    client = executor._client  # type: ignore[attr-defined]  # distributed.cfexecutor.ClientExecutor
    slots = check_cluster(client, files, out, options)
    link = getattr(client, "dashboard_link", None)
    if link:
        log.info("Dask dashboard: %s", link)
    return ClusterExecutor(executor, slots)
