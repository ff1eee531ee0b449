"""The book model's step (w 5×1, b 1, float64): ``Adam([w, b]).step([gw, gb])``, where Python overhead is all.

adam_np's numpy and numba kernels with ``nonfinite="propagate"`` and the default ``"raise"`` (the check), and
torch's fused Adam if installed; medians of interleaved rounds (:func:`adam_np.cli.bench.time_steps`), so that a
busy machine slows all alike. Run: ``python benchmarks/bench_book_step.py [--repeats 15] [--min-time 0.05]``.
"""

from __future__ import annotations

import argparse
import importlib.util

import numpy as np

from adam_np import Adam
from adam_np.cli.bench import time_steps
from adam_np.kernels import available_backends


def steps() -> dict:
    """Name -> one step of the book model, for each method available here."""
    rng = np.random.default_rng(0)
    w0, b0, gw, gb = rng.standard_normal((5, 1)), rng.standard_normal(1), rng.standard_normal((5, 1)), \
        rng.standard_normal(1)
    out = {}
    for backend in [b for b in ("numpy", "numba") if b in available_backends()]:
        for nonfinite in ("propagate", "raise"):
            opt = Adam([w0.copy(), b0.copy()], lr=1e-6, backend=backend, nonfinite=nonfinite)
            out[f"adam_np[{backend}] {nonfinite}"] = lambda opt=opt: opt.step([gw, gb])
    if importlib.util.find_spec("torch") is not None:
        import torch

        w, b = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)
        w.grad, b.grad = torch.tensor(gw), torch.tensor(gb)
        out["torch fused"] = torch.optim.Adam([w, b], lr=1e-6, fused=True).step
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds (the median is over them)")
    parser.add_argument("--min-time", type=float, default=0.05, help="seconds per timed batch")
    args = parser.parse_args()
    for name, seconds in time_steps(steps(), args.repeats, args.min_time).items():
        print(f"{name:28s} {seconds * 1e6:8.2f} µs")


if __name__ == "__main__":
    main()
