"""One training epoch on a Zarr store larger than the cluster's memory, against the store's read roof.

Usage: python benchmarks/bench_train_dask.py [--store PATH.zarr --rows 27000000 --features 10 --results DIR]

Writes (or reuses) a store of ``rows`` x ``features`` float64 (by default 27e6 x 10: 2.2 GB of features, more
than twice the 2 x 512 MiB of the workers), then on a new ``LocalCluster(processes=True)`` with two threads a
worker (as ``adam-np train`` starts it: a chunk that loads does not hold up the gradient of the chunk in use):

- ``read roof``: one plain pass over the store, ``da.from_zarr(X).sum().compute()`` (median of 3);
- ``epoch, batch B``: :func:`adam_np.cluster.train.run_cluster_train` for one epoch (or its first ``max_steps``
  steps, scaled to rows/s, for the smallest batches), for each batch size;
- the same with the data in this process's memory (NumPy, the same batches and gradient pieces), when
  ``--in-memory`` and the data fit;

and reports rows/s, the ratio of the epoch's time to the read roof, and the workers' peak RSS. Nothing is
asserted: it prints a Markdown table and writes it, with JSON, to ``--results``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import dask.array as da
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script: adam_np and benchmarks from the checkout

from adam_np.book.chapter7 import make_optimizer
from adam_np.cluster import local_client
from adam_np.cluster.data import make_data, open_data
from adam_np.cluster.train import Plan, batch_gradient, init_cluster_train, run_cluster_train
from benchmarks._common import peak_rss_mib, write_results

__all__ = ["main", "run"]


def _epoch(client, X, y, batch: int, max_steps: int | None) -> dict:
    plan = Plan(X.chunks[0], batch, seed=0)
    optimizer = make_optimizer("adam", in_place=True)
    state = init_cluster_train(optimizer, X, y, 0)
    limit = plan.batches if max_steps is None else min(max_steps, plan.batches)
    start = time.perf_counter()
    state = run_cluster_train(state, optimizer, X, y, plan, 1, client, on_step=lambda s: s.batch >= limit)
    seconds = time.perf_counter() - start
    rows = state.examples_seen
    return {"batch": batch, "steps": limit, "rows": rows, "seconds": seconds, "rows_per_s": rows / seconds,
            "epoch_seconds": seconds * plan.n / rows, "full_epoch": limit == plan.batches,
            "ms_per_step": 1e3 * seconds / limit}


def _in_memory(X, y, chunks, batch: int) -> dict:
    plan = Plan(chunks, batch, seed=0)
    optimizer = make_optimizer("adam", in_place=True)
    params = [np.random.default_rng(0).normal(0.0, 0.01, size=(X.shape[1], 1)), np.zeros(1)]
    opt_state = optimizer.init(params)
    start = time.perf_counter()
    for b in range(plan.batches):
        params, opt_state = optimizer.update(list(batch_gradient(X, y, plan, 0, b, *params)), opt_state, params)
    seconds = time.perf_counter() - start
    return {"batch": batch, "rows_per_s": plan.n / seconds, "epoch_seconds": seconds}


def run(store: str, rows: int = 27_000_000, features: int = 10, workers: int = 2, memory_limit: str = "512MiB",
        batches: Sequence[int] = (100_000, 10_000, 1_000), max_steps: int = 3000, in_memory: bool = True) -> dict:
    """Make the store if missing, then measure; returns the measurements.

    Parameters
    ----------
    store : str
        The ``.zarr`` store (created with :func:`adam_np.cluster.data.make_data` if it does not exist).
    rows, features : int
        Its shape when created.
    workers : int
    memory_limit : str
        Per worker.
    batches : sequence of int
        Batch sizes, one epoch each (capped at ``max_steps`` steps).
    max_steps : int
    in_memory : bool
        Also time the same epoch on NumPy arrays in this process.

    Returns
    -------
    dict
    """
    made = None
    if not os.path.exists(store):
        with local_client(n_workers=workers, processes=True, memory_limit=memory_limit):
            start = time.perf_counter()
            make_data(store, rows, features, seed=0)
            made = time.perf_counter() - start
    X, y, meta = open_data(store)
    out = {"rows": X.shape[0], "features": X.shape[1], "chunks": len(X.chunks[0]), "workers": workers,
           "memory_limit": memory_limit, "feature_bytes": X.nbytes, "make_seconds": made,
           "disk_bytes": sum(f.stat().st_size for f in Path(store).rglob("*") if f.is_file())}
    with local_client(n_workers=workers, threads_per_worker=2, processes=True, memory_limit=memory_limit) as client:
        out["worker_memory_bytes"] = sum(w["memory_limit"] for w in client.scheduler_info()["workers"].values())
        roofs = []
        for _ in range(3):
            start = time.perf_counter()
            da.from_zarr(store, component="X").sum().compute()
            roofs.append(time.perf_counter() - start)
        out["read_roof_seconds"] = statistics.median(roofs)
        out["epochs"] = [_epoch(client, X, y, b, max_steps) for b in batches]
        out["worker_peak_rss_mib"] = [round(v) for v in peak_rss_mib(client).values()]
    for e in out["epochs"]:
        e["vs_roof"] = e["epoch_seconds"] / out["read_roof_seconds"]
    if in_memory:
        Xn, yn = X.compute(), y.compute()
        out["in_memory"] = [_in_memory(Xn, yn, X.chunks[0], b) for b in batches[:1]]
    return out


def format_table(result: dict) -> str:
    """The Markdown table of :func:`run`'s result.

    Parameters
    ----------
    result : dict

    Returns
    -------
    str
    """
    gb = result["feature_bytes"] / 1e9
    lines = [f"One epoch of Adam on {result['rows']:.2e} x {result['features']} float64 ({gb:.2f} GB of features, "
             f"{result['chunks']} chunks) with {result['workers']} workers x {result['memory_limit']} "
             f"({result['worker_memory_bytes'] / 2**30:.1f} GiB in all)", "",
             f"Read roof (`da.from_zarr(X).sum()`): {result['read_roof_seconds']:.2f} s "
             f"= {result['rows'] / result['read_roof_seconds']:.3g} rows/s", "",
             "| batch | steps timed | ms per step | rows/s | epoch | epoch / read roof |", "|---|---|---|---|---|---|"]
    for e in result["epochs"]:
        epoch = f"{e['epoch_seconds']:.1f} s" + ("" if e["full_epoch"] else " (extrapolated)")
        lines.append(f"| {e['batch']:.0e} | {e['steps']} | {e['ms_per_step']:.1f} | {e['rows_per_s']:.3g} | {epoch} | "
                     f"{e['vs_roof']:.2f}x |")
    for e in result.get("in_memory", []):
        lines.append(f"| {e['batch']:.0e}, NumPy in memory | all | | {e['rows_per_s']:.3g} | "
                     f"{e['epoch_seconds']:.1f} s | |")
    lines += ["", f"Peak RSS per worker: {', '.join(f'{v} MiB' for v in result['worker_peak_rss_mib'])}."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run, print the table (and write it with the JSON to ``--results``).

    Parameters
    ----------
    argv : list of str, optional

    Returns
    -------
    int
    """
    parser = argparse.ArgumentParser(prog="bench_train_dask", description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="bench_data.zarr", help="the store (made if missing)")
    parser.add_argument("--rows", type=int, default=27_000_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="512MiB")
    parser.add_argument("--batches", type=int, nargs="+", default=[100_000, 10_000, 1_000])
    parser.add_argument("--max-steps", type=int, default=3000, help="steps timed per batch size at most")
    parser.add_argument("--no-in-memory", action="store_true", help="skip the in-memory NumPy comparison")
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args(argv)
    result = run(args.store, args.rows, args.features, args.workers, args.memory_limit, args.batches,
                 args.max_steps, not args.no_in_memory)
    write_results(args.results, "bench_train_dask", format_table(result), result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
