"""Side-by-side timing of one Adam step: adam_np's kernels, torch.optim.Adam, optax, naive NumPy, the memory roof.

Usage: python benchmarks/bench_step.py [--quick] [--sizes 6,1e3,1e6] [--repeats 11] [--compile-cost] [--results DIR]
(``adam-np bench`` is the installed package's small version: adam_np's kernels against naive NumPy and,
where installed, torch fused and optax.)

Everything runs in one process; for each size and dtype all methods are set up, then timed in
interleaved rounds (method A, B, C, A, B, C, ...) and the median per-step time of the rounds is
reported, so that a noisy, shared machine slows all methods alike. Nothing here is asserted:
it prints a table and writes CSV/JSON and a log-log plot.

Byte model: one Adam step reads p, g, v, s and writes p, v, s: 7 arrays, 28 bytes per float32
element (56 per float64). "GB/s" is that traffic divided by the time; the roof is a loop with the
same traffic and trivial arithmetic (:func:`benchmarks.roofs.stream_roof`).

torch, jax/optax, numba and matplotlib are optional: methods whose library is missing are left out.
"""

from __future__ import annotations

import argparse
import csv
import gc
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script: adam_np and benchmarks from the checkout

from adam_np import Adam
from adam_np.kernels import get_kernel

__all__ = ["BYTES_PER_ELEMENT", "METHODS", "add_arguments", "book_model", "format_table", "main", "run"]

BYTES_PER_ELEMENT = {"float32": 28, "float64": 56}
"""Bytes one Adam step moves per element: read p, g, v, s, write p, v, s (7 × itemsize)."""

DEFAULT_SIZES = (6, 1_000, 100_000, 1_000_000, 10_000_000)

_have = {name: importlib.util.find_spec(name) is not None for name in ("torch", "jax", "optax", "numba")}


def _rng_arrays(n: int, dtype: str, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    p, g, v = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    s = (rng.standard_normal(n) ** 2).astype(dtype)
    return [p, g, v, s]


# Each factory takes the shared buffers (p, g, v, s) of one size and dtype and returns (step, how):
# ``step()`` takes one Adam step (finished when it returns), ``how`` says how peak memory was measured
# ("tracemalloc" or None). Every in-place method works on the same four buffers, so that no method gets
# luckier memory than another: on this project's VM the same stream over two allocations of 1e7 float32
# elements took 3.1 ms in one and 4.8 ms in another (host-side page placement), which swamps the
# differences being measured.


def _adam_np(backend: str, nonfinite: str = "propagate", threads: int | None = None, fold: bool = False) -> Callable:
    def make(buffers: list[np.ndarray]):
        p, g, v, s = buffers
        opt = Adam([p], backend=backend, nonfinite=nonfinite, fold_bias_correction=fold)
        opt.state = opt.state._replace(v=[v], s=[s])  # the shared moments: one kernel call on the shared buffers
        grads = [g]
        opt.step(grads)  # a replaced state is validated by one step on the pure path; the kernel takes over next

        def step():
            opt.step(grads)

        if threads is None:
            return step, "tracemalloc"
        set_threads = _thread_setter(backend)

        def step_threads():
            old = set_threads(threads)
            try:
                opt.step(grads)
            finally:
                set_threads(old)

        return step_threads, "tracemalloc"

    return make


def _thread_setter(backend: str) -> Callable[[int], int]:
    return get_kernel(backend).set_num_threads


def _naive_numpy(buffers: list[np.ndarray]):
    """The textbook formula in NumPy: one expression per line, temporaries of size n."""
    p, g, v, s = buffers
    lr, beta1, beta2, eps = 1e-3, 0.9, 0.999, 1e-8
    t = [0]

    def step():
        nonlocal v, s
        t[0] += 1
        v = beta1 * v + (1 - beta1) * g
        s = beta2 * s + (1 - beta2) * g * g
        v_hat = v / (1 - beta1 ** t[0])
        s_hat = s / (1 - beta2 ** t[0])
        p[...] -= lr * v_hat / (np.sqrt(s_hat) + eps)

    return step, "tracemalloc"


def _roof(buffers: list[np.ndarray]):
    if _have["numba"]:
        from benchmarks.roofs import stream_roof

        return (lambda: stream_roof(*buffers)), "tracemalloc"
    p, g, v, s = buffers

    def roof_numpy():  # the same 7 arrays of traffic in four NumPy passes (a looser roof than numba's one)
        np.add.reduce(g)
        for x in (p, v, s):
            np.add(x, 0.0, out=x)

    return roof_numpy, "tracemalloc"


def _torch(mode: str) -> Callable:
    def make(buffers: list[np.ndarray]):
        import torch

        p, g, v, s = (torch.from_numpy(a) for a in buffers)
        x = p.requires_grad_(True)
        x.grad = g
        kwargs = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}}[mode]
        opt = torch.optim.Adam([x], lr=1e-3, **kwargs)
        # torch's own state layout, on the shared moment buffers (what its first step would allocate)
        opt.state[x] = {"step": torch.tensor(0.0, dtype=torch.float32), "exp_avg": v, "exp_avg_sq": s}
        return opt.step, None

    return make


def _optax(buffers: list[np.ndarray]):
    import jax
    import optax

    jax.config.update("jax_enable_x64", True)
    p, g, _, _ = buffers
    tx = optax.adam(1e-3)
    params = jax.device_put(p)  # a copy: JAX arrays are immutable (donated buffers make the step in place)
    grads = jax.device_put(g)
    state = tx.init(params)

    @jax.jit
    def _update(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    update = jax.jit(_update, donate_argnums=(0, 1))
    box = [params, state]

    def step():
        box[0], box[1] = update(box[0], box[1], grads)
        jax.block_until_ready(box[0])

    return step, None


METHODS: dict[str, Callable] = {
    "adam_np[numpy]": _adam_np("numpy"),
    "adam_np[numba]": _adam_np("numba"),
    "adam_np[numpy] folded": _adam_np("numpy", fold=True),
    "adam_np[numba] folded": _adam_np("numba", fold=True),
    "adam_np[numpy]+check": _adam_np("numpy", nonfinite="raise"),
    "adam_np[numba]+check": _adam_np("numba", nonfinite="raise"),
    "adam_np[numpy] 1 thread": _adam_np("numpy", threads=1),
    "adam_np[numba] 1 thread": _adam_np("numba", threads=1),
    "torch fused": _torch("fused"),
    "torch foreach": _torch("foreach"),
    "torch for-loop": _torch("for-loop"),
    "optax jit donated": _optax,
    "numpy naive": _naive_numpy,
    "roof (stream)": _roof,
}
"""Benchmarked methods by name. adam_np rows run with ``nonfinite="propagate"`` (torch does not
check gradients) except ``+check`` rows (default ``"raise"``: one extra read of g); ``1 thread``
rows show the thread scaling; ``folded`` rows use ``fold_bias_correction=True`` (one division and
one square root per element, as torch's fused kernel; the other rows are Algorithm 1's own order).
All adam_np rows use :meth:`adam_np.Adam.from_shapes` (one kernel call)."""

_NEEDS = {"numba": ("numba",), "torch": ("torch",), "optax": ("jax", "optax")}


def _available(name: str) -> bool:
    for key, libs in _NEEDS.items():
        if key in name and not all(_have[lib] for lib in libs):
            return False
    return True


def _calibrate(step: Callable, min_time: float) -> int:
    """Calls per timed batch so that a batch lasts about ``min_time`` seconds."""
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            step()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time or number >= 1 << 20:
            return number
        number = max(number * 2, int(number * min_time / max(elapsed, 1e-9)) + 1)


def _peak_extra_memory(step: Callable) -> int:
    """Peak bytes allocated through Python's allocators (NumPy included) during one step."""
    gc.collect()
    tracemalloc.start()
    try:
        step()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run(sizes: Sequence[int] = DEFAULT_SIZES, dtypes: Sequence[str] = ("float32", "float64"), repeats: int = 7,
        min_time: float = 0.02, methods: Sequence[str] | None = None, log: Callable[[str], Any] | None = None
        ) -> list[dict]:
    """Time one Adam step of every method for every size and dtype.

    Parameters
    ----------
    sizes : sequence of int
        Numbers of parameters n.
    dtypes : sequence of {"float32", "float64"}
    repeats : int, default 7
        Interleaved rounds; the reported time is the median over them.
    min_time : float, default 0.02
        Seconds per timed batch (small n: many steps per batch).
    methods : sequence of str, optional
        Names from :data:`METHODS` (default: all whose library is installed).
    log : callable, optional
        Called with a progress line per (n, dtype).

    Returns
    -------
    list of dict
        One row per (method, n, dtype): ``method, n, dtype, time_s`` (median), ``min_s``,
        ``gb_per_s`` (byte model :data:`BYTES_PER_ELEMENT`), ``vs_roof`` (roof time / time),
        ``vs_torch_fused`` (time / torch fused time), ``peak_extra_bytes`` (tracemalloc; None
        where the library allocates outside Python's view).

    Examples
    --------
    >>> rows = run(sizes=[6], dtypes=["float64"], repeats=1, min_time=0.0, methods=["adam_np[numpy]"])
    >>> [(r["method"], r["n"], r["dtype"]) for r in rows]
    [('adam_np[numpy]', 6, 'float64')]
    """
    names = [m for m in (methods or METHODS) if _available(m)]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ValueError(f"methods must be names from METHODS, got {unknown}")
    rows = []
    for dtype in dtypes:
        if dtype not in BYTES_PER_ELEMENT:
            raise ValueError(f"dtypes must be float32 or float64, got {dtype!r}")
        for n in sizes:
            steps, numbers, times, memory = {}, {}, {name: [] for name in names}, {}
            buffers = _rng_arrays(int(n), dtype)
            buffers[1] *= 1e-3  # a gradient of a realistic size against the moments
            for name in names:
                step, how = METHODS[name](buffers)
                step()  # warm-up: compile, allocate scratch
                memory[name] = _peak_extra_memory(step) if how == "tracemalloc" else None
                steps[name], numbers[name] = step, _calibrate(step, min_time)
            for _ in range(repeats):
                for name in names:
                    number, step = numbers[name], steps[name]
                    t0 = time.perf_counter()
                    for _ in range(number):
                        step()
                    times[name].append((time.perf_counter() - t0) / number)
            del steps, buffers
            gc.collect()
            medians = {name: statistics.median(ts) for name, ts in times.items()}
            for name in names:
                t = medians[name]
                rows.append({
                    "method": name, "n": int(n), "dtype": dtype, "time_s": t, "min_s": min(times[name]),
                    "gb_per_s": BYTES_PER_ELEMENT[dtype] * n / t / 1e9,
                    "vs_roof": medians["roof (stream)"] / t if "roof (stream)" in medians else None,
                    "vs_torch_fused": t / medians["torch fused"] if "torch fused" in medians else None,
                    "peak_extra_bytes": memory[name],
                })
            if log is not None:
                log(f"  n={n:.0e} {dtype}: done ({len(names)} methods, {repeats} rounds)")
    return rows


def book_model(repeats: int = 7, min_time: float = 0.05, log: Callable[[str], Any] | None = None) -> list[dict]:
    """Per-step time on the book's linear model (w 5×1, b 1, float64), interleaved like :func:`run`.

    adam_np: ``Adam([w, b]).step([gw, gb])`` on the caller's arrays per backend (``propagate`` and
    the default ``raise``), and ``Adam.from_shapes`` with ``step(opt.grads)``; torch.optim.Adam
    fused/foreach/for-loop.

    Parameters
    ----------
    repeats : int
    min_time : float
    log : callable, optional

    Returns
    -------
    list of dict
        ``method, time_s, vs_torch_fused`` per method.

    Examples
    --------
    >>> rows = book_model(repeats=1, min_time=0.0)
    >>> "adam_np[numpy] Adam([w, b])" in [r["method"] for r in rows]
    True
    """
    rng = np.random.default_rng(0)
    w0, b0 = rng.standard_normal((5, 1)), rng.standard_normal(1)
    gw, gb = rng.standard_normal((5, 1)), rng.standard_normal(1)
    steps: dict[str, Callable] = {}
    backends = ["numpy", "numba"] if _have["numba"] else ["numpy"]
    for backend in backends:
        for nonfinite in ("propagate", "raise"):
            opt = Adam([w0.copy(), b0.copy()], backend=backend, nonfinite=nonfinite)
            suffix = "" if nonfinite == "propagate" else "+check"
            steps[f"adam_np[{backend}] Adam([w, b]){suffix}"] = (lambda opt=opt: opt.step([gw, gb]))
        flat = Adam.from_shapes([(5, 1), (1,)], backend=backend, nonfinite="propagate")
        flat.grads[0][...], flat.grads[1][...] = gw, gb
        steps[f"adam_np[{backend}] from_shapes"] = (lambda flat=flat: flat.step(flat.grads))
    if _have["torch"]:
        import torch

        for mode, kwargs in (("fused", {"fused": True}), ("foreach", {"foreach": True}),
                             ("for-loop", {"foreach": False})):
            w, b = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)
            w.grad, b.grad = torch.tensor(gw), torch.tensor(gb)
            steps[f"torch {mode}"] = torch.optim.Adam([w, b], lr=1e-3, **kwargs).step
    numbers = {}
    for name, step in steps.items():
        step()
        numbers[name] = _calibrate(step, min_time)
    times: dict[str, list] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(numbers[name]):
                step()
            times[name].append((time.perf_counter() - t0) / numbers[name])
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    fused = medians.get("torch fused")
    if log is not None:
        log("  book model: done")
    return [{"method": name, "time_s": t, "vs_torch_fused": None if fused is None else t / fused}
            for name, t in medians.items()]


def _fmt_bytes(x: int | None) -> str:
    if x is None:
        return "n/a"
    return f"{x / 1e6:.2f} MB" if x >= 100_000 else f"{x / 1e3:.1f} kB"


def format_table(rows: list[dict]) -> str:
    """The rows of :func:`run` as a Markdown table, with the byte model stated above it.

    Parameters
    ----------
    rows : list of dict

    Returns
    -------
    str

    Examples
    --------
    >>> row = dict(method="m", n=10, dtype="float32", time_s=1e-6, min_s=1e-6, gb_per_s=0.28, vs_roof=0.5,
    ...            vs_torch_fused=2.0, peak_extra_bytes=0)
    >>> print(format_table([row]).splitlines()[-1])
    | m | 1e+01 | float32 | 1.00 µs | 0.28 | 0.50 | 2.00 | 0.0 kB |
    """
    lines = [
        "Byte model: one step reads p, g, v, s and writes p, v, s = 28 B/element (float32), 56 B/element (float64).",
        "time = median of interleaved rounds; vs roof = roof time / time; vs torch fused = time / torch fused time.",
        "",
        "| method | n | dtype | time | GB/s | vs roof | vs torch fused | peak extra memory |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["time_s"]
        shown = f"{t * 1e6:.2f} µs" if t < 1e-3 else f"{t * 1e3:.3f} ms"
        roof = "" if r["vs_roof"] is None else f"{r['vs_roof']:.2f}"
        fused = "" if r["vs_torch_fused"] is None else f"{r['vs_torch_fused']:.2f}"
        lines.append(f"| {r['method']} | {r['n']:.0e} | {r['dtype']} | {shown} | {r['gb_per_s']:.2f} | {roof} | "
                     f"{fused} | {_fmt_bytes(r['peak_extra_bytes'])} |")
    return "\n".join(lines)


def _format_book(rows: list[dict]) -> str:
    lines = ["Book model (w 5×1, b 1, float64), per step:", "", "| method | time | vs torch fused | speed-up |",
             "|---|---|---|---|"]
    for r in rows:
        ratio = r["vs_torch_fused"]
        lines.append(f"| {r['method']} | {r['time_s'] * 1e6:.2f} µs | {'' if ratio is None else f'{ratio:.3f}'} | "
                     f"{'' if ratio is None else f'{1 / ratio:.1f}×'} |")
    return "\n".join(lines)


def _plot(rows: list[dict], path: Path) -> bool:
    if importlib.util.find_spec("matplotlib") is None:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dtypes = sorted({r["dtype"] for r in rows})
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6 * len(dtypes), 4.5), squeeze=False)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    colors = plt.cm.tab20.colors
    for ax, dtype in zip(axes[0], dtypes):
        for i, method in enumerate(methods):
            pts = sorted((r["n"], r["time_s"]) for r in rows if r["method"] == method and r["dtype"] == dtype)
            if pts:
                roof = "roof" in method
                ax.loglog(*zip(*pts), marker="os^vD<>"[i % 7], label=method, color="black" if roof else colors[i % 20],
                          linestyle="--" if roof else "-")
        ax.set(title=f"one Adam step, {dtype}", xlabel="n (parameters)", ylabel="time per step (s)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def first_call_seconds() -> dict[str, float]:
    """Seconds the numba backend's first steps take per dtype: 1-D and 2-D, serial and parallel sizes, with and
    without the finiteness check (compiled, or loaded from numba's cache; in a fresh process, all of it).

    Returns
    -------
    dict
        ``{"float32": seconds, "float64": seconds}``: what the kernel adds to a process's first steps.

    Examples
    --------
    >>> sorted(first_call_seconds())
    ['float32', 'float64']
    """
    out = {}
    for dtype in ("float32", "float64"):
        t0 = time.perf_counter()
        for shape in ((1,), (1, 1), (1 << 20,), (1 << 20, 1)):
            for nonfinite in ("propagate", "raise"):
                x = np.zeros(shape, dtype)
                Adam([x], backend="numba", nonfinite=nonfinite).step([np.zeros_like(x)])
        out[dtype] = time.perf_counter() - t0
    return out


def _compile_cost() -> dict | None:
    """:func:`first_call_seconds` in fresh processes: cold (empty numba cache), then cached."""
    if not _have["numba"]:
        return None
    import subprocess
    import tempfile

    code = "import json; from benchmarks.bench_step import first_call_seconds; print(json.dumps(first_call_seconds()))"
    root = str(Path(__file__).resolve().parents[1])
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        for label in ("cold", "cached"):
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
            out[label] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def _comma_list(text: str, parse: Callable, what: str) -> list:
    items = [x.strip() for x in text.split(",")]
    try:
        values = [parse(x) for x in items]
    except (ValueError, OverflowError):
        values = None
    if not items or values is None:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return values


def _sizes(text: str) -> list:
    def size(x: str) -> int:
        value = float(x)
        if not (value >= 1 and value == int(value) and value <= 2**40):
            raise ValueError(x)
        return int(value)

    return _comma_list(text, size, "comma-separated integers >= 1 such as 6,1e3,1e6")


def _dtypes(text: str) -> list:
    def dtype(x: str) -> str:
        if x not in ("float32", "float64"):
            raise ValueError(x)
        return x

    return _comma_list(text, dtype, "comma-separated dtypes among float32,float64")


def _methods(text: str) -> list:
    def method(x: str) -> str:
        if x not in METHODS:
            raise ValueError(x)
        return x

    return _comma_list(text, method, f"comma-separated names among {', '.join(METHODS)}")


def _repeats(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _min_time(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


for _f, _name in ((_sizes, "sizes"), (_dtypes, "dtypes"), (_methods, "methods"), (_repeats, "repeats"),
                  (_min_time, "min time")):
    _f.__name__ = _name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser

    Examples
    --------
    >>> p = argparse.ArgumentParser(); add_arguments(p)
    >>> p.parse_args(["--quick"]).quick
    True
    """
    parser.add_argument("--sizes", type=_sizes, default=list(DEFAULT_SIZES),
                        help="comma-separated n (default 6,1e3,1e5,1e6,1e7)")
    parser.add_argument("--dtypes", type=_dtypes, default=["float32", "float64"],
                        help="comma-separated: float32,float64")
    parser.add_argument("--repeats", type=_repeats, default=7, help="interleaved rounds (median reported)")
    parser.add_argument("--min-time", type=_min_time, default=0.02, help="seconds per timed batch")
    parser.add_argument("--methods", type=_methods, default=None,
                        help="comma-separated method names (default: all available): " + ", ".join(METHODS))
    parser.add_argument("--results", type=Path, default=Path("results"), help="output folder (default ./results)")
    parser.add_argument("--quick", action="store_true",
                        help="sizes 6,1e3,1e5, 3 rounds, short batches: well under a minute")
    parser.add_argument("--no-book", action="store_true", help="skip the book-model timing")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument("--compile-cost", action="store_true",
                        help="also time the numba kernels' first call in fresh processes (cold and cached)")


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Run the benchmark, print the tables, write ``bench_step.csv/.json/.png`` (and book model) to ``--results``.

    Parameters
    ----------
    args : argparse.Namespace or list of str, optional
        Parsed options (from :func:`add_arguments`) or a command line.

    Returns
    -------
    int
        0, or 2 when ``--results`` cannot be written (one line on stderr, before any timing).

    Examples
    --------
    >>> import tempfile, contextlib, io
    >>> with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(io.StringIO()):
    ...     rc = main(["--sizes", "6", "--dtypes", "float64", "--repeats", "1", "--min-time", "0", "--no-book",
    ...                "--no-plot", "--methods", "adam_np[numpy],numpy naive", "--results", d])
    >>> rc
    0
    """
    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="bench_step", description=__doc__.splitlines()[0])
        add_arguments(parser)
        args = parser.parse_args(args)
    if args.quick:
        args.sizes, args.repeats, args.min_time = [6, 1_000, 100_000], 3, 0.005
    out = Path(args.results)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".adam-np-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        print(f"bench_step: error: argument --results: cannot write into {str(out)!r}: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    print(f"adam_np step benchmark: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"numpy {np.__version__}", flush=True)
    rows = run(args.sizes, args.dtypes, args.repeats, args.min_time, args.methods, log=print)
    table = format_table(rows)
    print(table)
    meta: dict[str, Any] = {"cpus": os.cpu_count(), "machine": platform.platform(), "numpy": np.__version__,
                            "byte_model": BYTES_PER_ELEMENT, "repeats": args.repeats}
    for lib in ("torch", "jax", "optax", "numba"):
        if _have[lib]:
            meta[lib] = __import__(lib).__version__
    book = None
    if not args.no_book:
        book = book_model(repeats=args.repeats, min_time=max(args.min_time, 0.01))
        print()
        print(_format_book(book))
    if args.compile_cost:
        meta["numba_first_call_s"] = _compile_cost()
        print(f"\nnumba first call (first_call_seconds, fresh process): {meta['numba_first_call_s']}")
    with open(out / "bench_step.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["method"])
        writer.writeheader()
        writer.writerows(rows)
    (out / "bench_step.json").write_text(json.dumps({"meta": meta, "rows": rows, "book_model": book}, indent=1))
    (out / "bench_step.md").write_text(table + ("\n\n" + _format_book(book) if book else "") + "\n")
    if not args.no_plot and _plot(rows, out / "bench_step.png"):
        print(f"\nplot: {out / 'bench_step.png'}")
    print(f"results in {out}/ ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
