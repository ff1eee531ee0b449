"""Distribution of adam_np's one-step ulp errors against the mpmath oracle (for the notes / closing note).

Run from the repository root:  python tests/golden/ulp_distribution.py [--trials 200]
Inputs as in make_golden.py (magnitudes 1e-6..1e3, t in 1..10^4, random lr/betas/eps), 24 elements per
trial; prints Markdown tables of ulp-error percentiles and bins for x_t, v_t, s_t per dtype and eps mode,
with the oracle fed adam_np's float64 coefficients ("float64") or exact ones ("exact").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

import itertools

from make_golden import inputs

from adam_np import AdamConfig, AdamState, update
from adam_np.verify.oracle import adam_step_mp, ulp_errors

BINS = (0.5, 1.0, 2.0, 4.0)


def collect(dtype: str, eps_mode: str, trials: int, coefficients: str, early: bool = False) -> dict:
    out = {"x": [], "x_small": [], "v": [], "s": []}
    for seed in range(1000, 1000 + trials):
        d = inputs(seed, dtype)
        if early:  # the first steps with beta2 = 0.999: 1 - beta2^t cancels
            d["step"], d["beta2"] = 1 + seed % 10, 0.999
        config = AdamConfig(lr=d["lr"], beta1=d["beta1"], beta2=d["beta2"], eps=d["eps"], eps_mode=eps_mode)
        x1, state = update(d["g"], AdamState(d["step"] - 1, d["v"], d["s"]), d["x"], config)
        o = adam_step_mp(d["x"], d["g"], d["v"], d["s"], d["step"], config, coefficients=coefficients)
        ex = ulp_errors(x1, o.x, o.scale_x)
        small = np.array([abs(dx) <= abs(float(x)) / 4 for x, dx in zip(d["x"], o.dx)])
        out["x"].extend(ex)
        out["x_small"].extend(ex[small])
        out["v"].extend(ulp_errors(state.v, o.v, o.scale_v))
        out["s"].extend(ulp_errors(state.s, o.s, o.scale_s))
    return {k: np.asarray(v) for k, v in out.items()}


def table(trials: int) -> str:
    """Markdown table of ulp-error statistics per dtype, eps mode, coefficients and value."""
    lines = ["| dtype | eps_mode | coefficients | value | n | median | p99 | max | <0.5 | <1 | <2 | <4 | >=4 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    cases = [(d, m, c, False) for d in ("float64", "float32") for m in ("outside", "root", "hat")
             for c in ("float64", "exact")]
    cases += [("float64", "outside", c, True) for c in ("float64", "exact")]
    for dtype, eps_mode, coefficients, early in cases:
        data = collect(dtype, eps_mode, trials, coefficients, early)
        mode = f"{eps_mode}, t<=10, b2=0.999" if early else eps_mode
        for key in ("x", "x_small", "v", "s"):
            e = data[key]
            edges = (0.0, *BINS, np.inf)
            shares = [np.mean((e >= lo) & (e < hi)) for lo, hi in itertools.pairwise(edges)]
            name = "x (dx<=x/4)" if key == "x_small" else key
            lines.append(f"| {dtype} | {mode} | {coefficients} | {name} | {len(e)} | {np.median(e):.2f} | "
                         f"{np.percentile(e, 99):.2f} | {e.max():.2f} | "
                         + " | ".join(f"{100 * c:.1f}%" for c in shares) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    print(table(parser.parse_args().trials))


if __name__ == "__main__":
    main()
