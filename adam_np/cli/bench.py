"""The ``adam-np bench`` sub-command: how long one Adam step takes on this machine.

For each size and dtype, every method gets the same parameters and gradient and takes steps in interleaved
rounds (A, B, C, A, B, C, ...; each round a batch of calls lasting about ``--min-time``), so that a busy machine
slows all methods alike; the table shows the median time per step over the rounds. adam_np runs with
``nonfinite="propagate"`` (no gradient check, as torch's fused step). GB/s counts the 7 arrays one step moves
(read p, g, v, s; write p, v, s: 28 B per float32 element, 56 per float64); torch is timed when installed.
The repository's ``benchmarks/bench_step.py`` measures more (optax, torch's other modes, thread scaling, folded
bias correction, the memory roof, peak memory, a plot).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ._common import nonneg_float, positive_int

__all__ = ["METHODS", "add", "available", "format_table", "main", "run", "time_steps"]

BYTES_PER_ELEMENT = {"float32": 28, "float64": 56}
"""Bytes one Adam step moves per element: read p, g, v, s, write p, v, s (7 × itemsize)."""

METHODS = {"adam_np[numpy]": (), "adam_np[numba]": ("numba",), "numpy naive": (), "torch fused": ("torch",)}
"""The methods by name, with the modules each needs (a method whose modules are missing is left out)."""


def _adam_np(backend: str, p: np.ndarray, g: np.ndarray) -> Callable[[], Any]:
    from ..optimizer import Adam

    opt = Adam([p], lr=1e-3, backend=backend, nonfinite="propagate")
    return lambda: opt.step([g])


def _numpy_naive(p: np.ndarray, g: np.ndarray) -> Callable[[], Any]:
    """The textbook formula in NumPy, one expression per line (temporaries of the array's size)."""
    lr, beta1, beta2, eps = 1e-3, 0.9, 0.999, 1e-8
    state = {"t": 0, "v": np.zeros_like(p), "s": np.zeros_like(p)}

    def step() -> None:
        state["t"] += 1
        t, v, s = state["t"], state["v"], state["s"]
        state["v"] = v = beta1 * v + (1 - beta1) * g
        state["s"] = s = beta2 * s + (1 - beta2) * g * g
        p[...] -= lr * (v / (1 - beta1**t)) / (np.sqrt(s / (1 - beta2**t)) + eps)

    return step


def _torch_fused(p: np.ndarray, g: np.ndarray) -> Callable[[], Any]:
    import torch

    x = torch.from_numpy(p).requires_grad_(True)  # p's memory, updated in place as adam_np updates it
    x.grad = torch.from_numpy(g)
    return torch.optim.Adam([x], lr=1e-3, fused=True).step


_MAKERS = {"adam_np[numpy]": lambda p, g: _adam_np("numpy", p, g),
           "adam_np[numba]": lambda p, g: _adam_np("numba", p, g),
           "numpy naive": _numpy_naive, "torch fused": _torch_fused}


def available(name: str) -> bool:
    """Whether the modules method ``name`` needs are installed.

    Parameters
    ----------
    name : str
        A key of :data:`METHODS`.

    Returns
    -------
    bool

    Examples
    --------
    >>> available("adam_np[numpy]")
    True
    """
    return all(importlib.util.find_spec(module) is not None for module in METHODS[name])


def time_steps(steps: dict, repeats: int, min_time: float) -> dict:
    """Median seconds per call of each function in ``steps``, over ``repeats`` interleaved rounds.

    Each function is called once first (compilation, allocation), then in every round once per method a batch of
    calls lasting about ``min_time`` seconds (the batch size found before the rounds) is timed.

    Parameters
    ----------
    steps : dict
        Name -> function of no arguments.
    repeats : int
        Rounds (the median is over them).
    min_time : float
        Seconds per timed batch.

    Returns
    -------
    dict
        Name -> median seconds per call.

    Examples
    --------
    >>> sorted(time_steps({"a": lambda: None, "b": lambda: None}, repeats=3, min_time=0.0))
    ['a', 'b']
    """
    numbers = {}
    for name, step in steps.items():
        step()
        number, elapsed = 1, 0.0
        while True:
            t0 = time.perf_counter()
            for _ in range(number):
                step()
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time or number >= 1 << 20:
                break
            number = max(2 * number, int(number * min_time / max(elapsed, 1e-9)) + 1)
        numbers[name] = number
    times: dict = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(numbers[name]):
                step()
            times[name].append((time.perf_counter() - t0) / numbers[name])
    return {name: statistics.median(ts) for name, ts in times.items()}


def run(sizes=(6, 1_000, 100_000, 1_000_000, 10_000_000), dtypes=("float32", "float64"), repeats: int = 7,
        min_time: float = 0.02, methods=None, log: Callable[[str], Any] | None = None) -> list[dict]:
    """Time one Adam step of each method for each size and dtype.

    Parameters
    ----------
    sizes : sequence of int
        Numbers of parameters.
    dtypes : sequence of {"float32", "float64"}
    repeats : int, default 7
        Interleaved rounds; the median is reported.
    min_time : float, default 0.02
        Seconds per timed batch.
    methods : sequence of str, optional
        Keys of :data:`METHODS` (default: all whose modules are installed; others are left out).
    log : callable, optional
        Called with one progress line per size and dtype.

    Returns
    -------
    list of dict
        One row per method, size and dtype: ``method, n, dtype, time_s, gb_per_s, vs_naive``
        (the naive NumPy formula's time over this method's, when it was timed).

    Examples
    --------
    >>> rows = run(sizes=[6], dtypes=["float64"], repeats=1, min_time=0.0, methods=["adam_np[numpy]", "numpy naive"])
    >>> [(r["method"], r["n"], r["dtype"]) for r in rows]
    [('adam_np[numpy]', 6, 'float64'), ('numpy naive', 6, 'float64')]
    """
    names = [m for m in (methods or METHODS) if available(m)]
    rows = []
    for dtype in dtypes:
        for n in sizes:
            rng = np.random.default_rng(0)
            p = rng.standard_normal(n).astype(dtype)
            g = (1e-3 * rng.standard_normal(n)).astype(dtype)
            medians = time_steps({name: _MAKERS[name](p, g) for name in names}, repeats, min_time)
            naive = medians.get("numpy naive")
            rows += [{"method": name, "n": n, "dtype": dtype, "time_s": t,
                      "gb_per_s": BYTES_PER_ELEMENT[dtype] * n / t / 1e9,
                      "vs_naive": None if naive is None else naive / t} for name, t in medians.items()]
            if log is not None:
                log(f"  n={n:.0e} {dtype}: done")
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows of :func:`run` as a Markdown table.

    Parameters
    ----------
    rows : list of dict

    Returns
    -------
    str

    Examples
    --------
    >>> print(format_table([dict(method="m", n=10, dtype="float32", time_s=2e-6, gb_per_s=0.14, vs_naive=3.0)]))
    | method | n | dtype | time per step | GB/s | speed-up over naive NumPy |
    |---|---|---|---|---|---|
    | m | 1e+01 | float32 | 2.00 µs | 0.14 | 3.0× |
    """
    lines = ["| method | n | dtype | time per step | GB/s | speed-up over naive NumPy |", "|---|---|---|---|---|---|"]
    for r in rows:
        t = r["time_s"]
        shown = f"{t * 1e6:.2f} µs" if t < 1e-3 else f"{t * 1e3:.2f} ms"
        ratio = "" if r["vs_naive"] is None else f"{r['vs_naive']:.1f}×"
        lines.append(f"| {r['method']} | {r['n']:.0e} | {r['dtype']} | {shown} | {r['gb_per_s']:.2f} | {ratio} |")
    return "\n".join(lines)


def _comma_list(parse: Callable[[str], Any], what: str, name: str) -> Callable[[str], list]:
    """An argparse ``type=`` for a comma-separated list whose items ``parse`` accepts (else ValueError)."""

    def parse_list(text: str) -> list:
        try:
            return [parse(x.strip()) for x in text.split(",")]
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None

    parse_list.__name__ = name
    return parse_list


def _size(text: str) -> int:
    value = float(text)
    if not (1 <= value <= 2**40 and value == int(value)):
        raise ValueError(text)
    return int(value)


def _among(choices) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(text)
        return text

    return parse


_sizes = _comma_list(_size, "comma-separated integers >= 1 such as 6,1e3,1e6", "sizes")
_dtypes = _comma_list(_among(BYTES_PER_ELEMENT), "comma-separated dtypes among float32,float64", "dtypes")
_methods = _comma_list(_among(METHODS), f"comma-separated names among {', '.join(METHODS)}", "methods")


def add(subparsers: Any) -> None:
    """Register ``adam-np bench``.

    Parameters
    ----------
    subparsers : argparse sub-parsers action

    Examples
    --------
    >>> parser = argparse.ArgumentParser(); add(parser.add_subparsers())
    >>> parser.parse_args(["bench", "--sizes", "6,1e3"]).sizes
    [6, 1000]
    """
    p = subparsers.add_parser("bench", help="time one Adam step on this machine (adam_np, naive NumPy, torch)",
                              description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("--sizes", type=_sizes, default=[6, 1_000, 100_000, 1_000_000, 10_000_000],
                   help="comma-separated numbers of parameters (default 6,1e3,1e5,1e6,1e7)")
    p.add_argument("--dtypes", type=_dtypes, default=["float32", "float64"], help="comma-separated: float32,float64")
    p.add_argument("--repeats", type=positive_int, default=7, help="interleaved rounds, median reported (default 7)")
    p.add_argument("--min-time", type=nonneg_float, default=0.02, help="seconds per timed batch (default 0.02)")
    p.add_argument("--methods", type=_methods, default=None,
                   help="comma-separated, among " + ", ".join(METHODS) + " (default: all installed)")
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="folder for bench_step.csv and bench_step.md (default ./results)")
    p.add_argument("--quick", action="store_true", help="sizes 6,1e3,1e5, 3 rounds, short batches: seconds")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run ``adam-np bench``: print the table and write it as CSV and Markdown into ``--results``.

    Parameters
    ----------
    args : argparse.Namespace
        From the parser :func:`add` builds.

    Returns
    -------
    int
        0, or 2 when ``--results`` cannot be written (one line on stderr, before any timing).
    """
    if args.quick:
        args.sizes, args.repeats, args.min_time = [6, 1_000, 100_000], 3, 0.005
    out = Path(args.results)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".adam-np-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        print(f"adam-np bench: error: argument --results: cannot write into {str(out)!r}: {exc}", file=sys.stderr)
        return 2
    print(f"one Adam step on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy "
          f"{np.__version__}; medians of {args.repeats} interleaved rounds", flush=True)
    missing = [m for m in (args.methods or METHODS) if not available(m)]
    if missing:
        print(f"left out (not installed): {', '.join(missing)}")
    rows = run(args.sizes, args.dtypes, args.repeats, args.min_time, args.methods, log=print)
    table = format_table(rows)
    print(table)
    with open(out / "bench_step.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["method"])
        writer.writeheader()
        writer.writerows(rows)
    (out / "bench_step.md").write_text(table + "\n")
    print(f"results in {out}/")
    return 0
