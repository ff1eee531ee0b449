"""Regenerate the golden vectors of one Adam step from the mpmath oracle (adam_np.verify.oracle).

Run from the repository root:  python tests/golden/make_golden.py
It writes tests/golden/adam_<dtype>_<eps_mode>.npz, each holding, for a few fixed seeds (axis 0):
inputs x, g, v, s (of that dtype), the step t and hyper-parameters lr, beta1, beta2, eps, and the
oracle's x_t, v_t, s_t rounded to float64 (expected_*) with the scales at which their ulp errors
are measured (scale_*). tests/test_oracle.py compares adam_np.update against them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from adam_np import AdamConfig
from adam_np.verify.oracle import adam_step_mp

SEEDS = (0, 1, 2)
SIZE = 24
EPS_MODES = ("outside", "root", "hat")
DTYPES = ("float64", "float32")


def inputs(seed: int, dtype: str) -> dict:
    """Random inputs spanning magnitudes 1e-6..1e3, one step t in 1..10^4, random hyper-parameters."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(SIZE) * 10.0 ** rng.uniform(-6, 3, SIZE)
    return {
        "x": (rng.standard_normal(SIZE) * 10.0 ** rng.uniform(-3, 3, SIZE)).astype(dtype),
        "g": (rng.standard_normal(SIZE) * 10.0 ** rng.uniform(-6, 3, SIZE)).astype(dtype),
        "v": v.astype(dtype),
        "s": (v**2 * 10.0 ** rng.uniform(-1, 1, SIZE)).astype(dtype),
        "step": int(rng.integers(1, 10_000)),
        "lr": float(10.0 ** rng.uniform(-4, 0)),
        "beta1": float(rng.uniform(0.0, 0.99)),
        "beta2": float(rng.uniform(0.9, 0.9999)),
        "eps": float(10.0 ** rng.uniform(-9, -3)),
    }


def golden(dtype: str, eps_mode: str) -> dict:
    """Stacked inputs and oracle outputs for all SEEDS."""
    rows = []
    for seed in SEEDS:
        d = inputs(seed, dtype)
        config = AdamConfig(lr=d["lr"], beta1=d["beta1"], beta2=d["beta2"], eps=d["eps"], eps_mode=eps_mode)
        out = adam_step_mp(d["x"], d["g"], d["v"], d["s"], d["step"], config)
        for key in ("x", "v", "s"):
            d[f"expected_{key}"] = np.array([float(e) for e in getattr(out, key)])
            d[f"scale_{key}"] = np.array([float(e) for e in getattr(out, f"scale_{key}")])
        d["dx"] = np.array([float(e) for e in out.dx])
        rows.append(d)
    return {key: np.array([r[key] for r in rows]) for key in rows[0]}


def main() -> None:
    for dtype in DTYPES:
        for eps_mode in EPS_MODES:
            path = Path(__file__).with_name(f"adam_{dtype}_{eps_mode}.npz")
            np.savez_compressed(path, eps_mode=np.array(eps_mode), **golden(dtype, eps_mode))
            print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
