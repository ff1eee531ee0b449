"""One Adam step on Dask arrays sharded over a ``LocalCluster``, against the cluster's own roof and numba.

Usage: python benchmarks/bench_dask.py [--n 100000000 --chunk 10000000 --repeats 7 --results DIR]

For ``n`` float32 parameters in chunks of ``chunk`` elements, on a cluster of ``workers`` processes (one
thread each), everything timed in interleaved rounds (method A, B, C, A, B, C, ...) with medians reported:

- ``dask adam``: :class:`adam_np.Adam` over Dask arrays (a numba task per chunk,
  :mod:`adam_np.kernels.dask_chunks`), ``nonfinite="propagate"`` (no check, as torch fused) and ``"raise"``
  (the default: the finiteness of every gradient chunk computed in the same persist); one step = build +
  persist + wait until every new chunk is in the workers' memory;
- ``dask update``: :func:`adam_np.update` on the same Dask arrays through array-api-compat (NumPy ufuncs per
  chunk, a dozen temporaries), persisted alike: the generic path, for configs no kernel runs;
- ``dask roof``: the same access pattern (read p, g, v, s; write new p, v, s) with trivial arithmetic, one
  numba pass per chunk into a new block as the kernel path does, on the same chunks, persisted and waited for
  alike: what the cluster can do at best for this traffic;
- ``numba 1 process``: :class:`adam_np.Adam` on NumPy arrays with the numba kernel, in this process;
- ``dask adam (overhead)``: the same Dask step at ``overhead_n`` elements (two chunks), where the time is
  the scheduler's, not the arithmetic's.

It also reports the peak RSS of each worker process and, over ``--flat-steps`` steps at a small size, the
time per step and the graph size at the start and at the end (flat: a persisted step is one task per chunk,
whatever the number of steps). Byte model: 28 B per float32 element (read 4 arrays, write 3).
Nothing is asserted: it prints a Markdown table and writes it, with JSON, to ``--results``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script: adam_np and benchmarks from the checkout

from adam_np import Adam, AdamConfig, AdamState, update
from benchmarks._common import peak_rss_mib, write_results

__all__ = ["add_arguments", "main", "run"]

BYTES_PER_ELEMENT = 28


def _wait(arrays: list) -> None:
    from distributed import wait

    wait([a for a in arrays])


def _persisted(arrays: list) -> list:
    arrays = list(dask.persist(*arrays))
    _wait(arrays)
    return arrays


def _inputs(n: int, chunk: int, seed: int = 0) -> list:
    """p, g, v, s as persisted float32 Dask arrays, made on the workers (never on the client)."""
    rs = da.random.RandomState(seed)
    p, g, v = (rs.standard_normal(n, chunks=chunk).astype(np.float32) for _ in range(3))
    s = (rs.standard_normal(n, chunks=chunk) ** 2).astype(np.float32)
    return _persisted([p, g, v, s])


def _dask_adam(buffers: list, nonfinite: str) -> Callable[[], None]:
    p, g, v, s = buffers
    opt = Adam([p], lr=1e-3, nonfinite=nonfinite)
    opt.state = opt.state._replace(v=[v], s=[s])

    def step() -> None:
        opt.step([g])
        _wait([*opt.params, *opt.state.v, *opt.state.s])

    step.opt = opt
    return step


def _dask_update(buffers: list) -> Callable[[], None]:
    p, g, v, s = buffers
    config = AdamConfig(lr=1e-3, nonfinite="propagate")
    state = {"p": p, "st": AdamState(0, v, s)}

    def step() -> None:
        p1, st = update(g, state["st"], state["p"], config)
        p1, v1, s1 = _persisted([p1, st.v, st.s])
        state["p"], state["st"] = p1, st._replace(v=v1, s=s1)

    return step


def _roof_chunk(p: np.ndarray, g: np.ndarray, v: np.ndarray, s: np.ndarray) -> np.ndarray:
    from benchmarks.roofs import stream_roof_into

    out = np.empty((3, *p.shape), p.dtype)
    stream_roof_into(*(np.ascontiguousarray(a).reshape(-1) for a in (p, g, v, s)), out.reshape(3, -1))
    return out


def _dask_roof(buffers: list) -> Callable[[], None]:
    """Adam's access pattern with trivial arithmetic, built as the kernel path builds a step: one task per
    chunk reads p, g, v, s and writes a new (3, chunk) block in one numba pass; persisted and waited for."""
    p, g, v, s = buffers
    state = {"p": p, "v": v, "s": s}

    def step() -> None:
        block = da.map_blocks(_roof_chunk, state["p"], g, state["v"], state["s"], new_axis=0,
                              chunks=((3,), *p.chunks), dtype=p.dtype, meta=np.empty((0, 0), p.dtype))
        state["p"], state["v"], state["s"] = _persisted([block[0], block[1], block[2]])

    return step


def _numba_adam(n: int) -> Callable[[], None] | None:
    rng = np.random.default_rng(0)
    p, g, v = (rng.standard_normal(n, dtype=np.float32) for _ in range(3))
    try:
        opt = Adam([p], lr=1e-3, nonfinite="propagate", backend="numba")
    except ValueError:  # pragma: no cover - numba is in the test extra
        return None
    opt.step([g])  # compile
    return lambda: opt.step([g])


def _time(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def _flat(client: Any, n: int, chunk: int, steps: int) -> dict:
    """Time per step and graph sizes over ``steps`` steps of a small problem: the first and last tenth."""
    step = _dask_adam(_inputs(n, chunk, seed=4), "raise")
    def tasks() -> int:
        return client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))

    tenth = max(1, steps // 10)
    times, counts = [], []
    for k in range(steps):
        times.append(_time(step))
        if k + 1 in (tenth, steps):
            counts.append(tasks())
    return {
        "steps": steps,
        "first_ms": 1e3 * statistics.median(times[:tenth]),
        "last_ms": 1e3 * statistics.median(times[-tenth:]),
        "graph_tasks": len(step.opt.params[0].__dask_graph__()),
        "scheduler_tasks_first": counts[0],
        "scheduler_tasks": counts[-1],
        "worker_rss_mib": peak_rss_mib(client),
    }


def run(n: int = 100_000_000, chunk: int = 10_000_000, workers: int = 2, repeats: int = 7,
        overhead_n: int = 10_000, flat_steps: int = 1000, memory_limit: str = "10GiB", settle: float = 0.5) -> dict:
    """Run the benchmark on a new ``LocalCluster(processes=True)`` and return the measurements.

    Parameters
    ----------
    n, chunk : int
        Parameters (float32) and elements per chunk.
    workers : int
        Worker processes (one thread each).
    repeats : int
        Interleaved rounds; medians are reported.
    overhead_n : int
        Size of the scheduler-overhead step (two chunks).
    flat_steps : int
        Steps of the graph-growth check (at ``overhead_n`` elements); 0 skips it.
    memory_limit : str
        Per worker.
    settle : float
        Seconds of rest before each timed step (untimed), so that no step pays for the frees of the last.

    Returns
    -------
    dict
        ``rows`` (method, median seconds, GB/s, ratio to the roof), ``overhead_ms``, ``flat``,
        ``worker_rss_mib`` and the machine.
    """
    from adam_np.cluster import local_client

    with local_client(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit) as client:
        # Each method its own inputs (seeds 0, 1, 2): equal inputs would give equal task keys, and a method
        # would find the step another one just computed already in memory.
        methods = {
            "dask adam, nonfinite=propagate": _dask_adam(_inputs(n, chunk, seed=0), "propagate"),
            "dask adam, nonfinite=raise": _dask_adam(_inputs(n, chunk, seed=1), "raise"),
            "dask update (array API), propagate": _dask_update(_inputs(n, chunk, seed=5)),
            "dask roof": _dask_roof(_inputs(n, chunk, seed=2)),
        }
        numba_step = _numba_adam(n)
        if numba_step is not None:
            methods["numba, 1 process"] = numba_step
        small = _dask_adam(_inputs(overhead_n, max(1, overhead_n // 2), seed=3), "raise")
        for _ in range(3):  # warm-up: imports, compilation on the workers, the allocator's first growth
            for step in [*methods.values(), small]:
                step()
        times: dict = {name: [] for name in methods}
        small_times = []
        for _ in range(repeats):
            for name, step in methods.items():
                time.sleep(settle)  # the previous method's chunks are freed asynchronously on the workers
                times[name].append(_time(step))
            time.sleep(settle)
            small_times.append(_time(small))
        rss = peak_rss_mib(client)
        methods_run = list(methods)
        methods.clear()  # release every method's arrays (and their history) before the growth check
        small = None
        flat = _flat(client, overhead_n, max(1, overhead_n // 2), flat_steps) if flat_steps else None
    roof = statistics.median(times["dask roof"])
    rows = []
    for name in methods_run:
        ts = times[name]
        med = statistics.median(ts)
        rows.append({"method": name, "seconds": med, "gb_s": BYTES_PER_ELEMENT * n / med / 1e9,
                     "vs_roof": roof / med})
    return {"n": n, "chunk": chunk, "workers": workers, "repeats": repeats, "rows": rows,
            "overhead_ms": 1e3 * statistics.median(small_times), "overhead_n": overhead_n,
            "worker_rss_mib": rss, "flat": flat, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "versions": {"dask": dask.__version__, "numpy": np.__version__}}


def format_table(result: dict) -> str:
    """The Markdown table of :func:`run`'s result.

    Parameters
    ----------
    result : dict

    Returns
    -------
    str
    """
    lines = [f"One Adam step, n = {result['n']:.0e} float32 in chunks of {result['chunk']:.0e}, "
             f"{result['workers']} workers x 1 thread ({result['machine']}; medians of {result['repeats']})", "",
             "| method | time per step | GB/s (28 B/element) | share of the dask roof |", "|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['method']} | {1e3 * row['seconds']:.1f} ms | {row['gb_s']:.2f} | "
                     f"{100 * row['vs_roof']:.0f} % |")
    lines += ["", f"Scheduler overhead: one Dask step at n = {result['overhead_n']:.0e} (2 chunks) takes "
              f"{result['overhead_ms']:.1f} ms.",
              f"Peak RSS per worker: {', '.join(f'{v:.0f} MiB' for v in result['worker_rss_mib'].values())}."]
    flat = result["flat"]
    if flat:
        lines.append(f"Over {flat['steps']} steps at n = {result['overhead_n']:.0e}: {flat['first_ms']:.1f} ms per "
                     f"step in the first tenth, {flat['last_ms']:.1f} ms in the last; the parameters' graph holds "
                     f"{flat['graph_tasks']} tasks, the scheduler {flat['scheduler_tasks_first']} after the first "
                     f"tenth and {flat['scheduler_tasks']} at the end; worker RSS "
                     f"{', '.join(f'{v:.0f} MiB' for v in flat['worker_rss_mib'].values())}.")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's flags.

    Parameters
    ----------
    parser : argparse.ArgumentParser

    Examples
    --------
    >>> p = argparse.ArgumentParser(); add_arguments(p)
    >>> p.parse_args(["--n", "1000"]).n
    1000
    """
    parser.add_argument("--n", type=int, default=100_000_000, help="float32 parameters (default 1e8)")
    parser.add_argument("--chunk", type=int, default=10_000_000, help="elements per chunk (default 1e7)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--overhead-n", type=int, default=10_000, help="size of the overhead step (default 1e4)")
    parser.add_argument("--flat-steps", type=int, default=1000, help="steps of the graph-growth check (0: skip)")
    parser.add_argument("--memory-limit", default="10GiB", help="per worker (default 10GiB; spilling starts at 60 %%)")
    parser.add_argument("--results", type=Path, default=None, help="write bench_dask.md and .json here")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run, print the table (and write it with the JSON to ``--results``).

    Parameters
    ----------
    argv : list of str, optional

    Returns
    -------
    int
        0.
    """
    parser = argparse.ArgumentParser(prog="bench_dask", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    result = run(args.n, args.chunk, args.workers, args.repeats, args.overhead_n, args.flat_steps, args.memory_limit)
    write_results(args.results, "bench_dask", format_table(result), result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
