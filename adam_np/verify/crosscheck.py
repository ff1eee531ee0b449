"""Run one random problem through adam_np's presets and the installed frameworks; compare.

The problem: parameters :math:`x_0 \\sim N(0, 1)` of size ``n`` and a fixed sequence of gradients
whose scales span five orders of magnitude per coordinate (a drift plus noise), so every
coordinate of every run sees the same gradients whatever its trajectory. Each framework runs
its own optimizer with its own defaults except the learning rate; adam_np runs the matching
preset of :mod:`adam_np.verify.presets`. Reported per step window: the largest absolute difference of
the parameters, the normwise relative difference max|Δx|/max|x_ref|, the largest distance in
units in the last place, and pass/fail against the tolerance (1e-12 normwise in float64).
A framework that is not installed is reported as ``missing``, never as passing.

>>> rows = crosscheck(against=["torch"], variants=["adam"], steps=20, windows=2)
>>> [(r.framework, r.variant, r.steps, r.status) for r in rows]
[('torch', 'adam', '1-10', 'pass'), ('torch', 'adam', '11-20', 'pass')]
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..core.adam import init, update
from . import presets

__all__ = ["FRAMEWORKS", "LEGEND", "TOLERANCES", "Row", "crosscheck", "format_table", "preset_differences", "problem",
           "run_adam_np", "run_optax", "run_torch", "ulp_distance"]

TOLERANCES = {"float64": 1e-12, "float32": 1e-5}
"""Normwise relative tolerance per dtype (max|Δx|/max|x_ref| at every step)."""

FRAMEWORKS = {
    "torch": ("adam", "amsgrad", "adamw", "adamax", "nadam", "radam"),
    "optax": ("adam", "amsgrad", "adamw", "adamax", "nadam", "radam", "yogi"),
}
"""The real frameworks ``crosscheck`` drives, and the variants each has."""


@dataclass(frozen=True)
class Row:
    """One line of the cross-check table.

    Attributes
    ----------
    framework, variant : str
    steps : str
        The step window, ``"first-last"`` (1-based), or ``"-"``.
    max_abs : float
        Largest :math:`|x - x_{ref}|` in the window.
    max_rel : float
        Largest normwise relative difference :math:`\\max|x - x_{ref}|/\\max|x_{ref}|` of one step.
    max_ulp : float
        Largest elementwise distance in units in the last place of the dtype.
    tol : float
        The tolerance on ``max_rel``.
    status : str
        ``"pass"``, ``"FAIL"`` or ``"missing"`` (framework not installed).
    """

    framework: str
    variant: str
    steps: str
    max_abs: float
    max_rel: float
    max_ulp: float
    tol: float
    status: str


def problem(n: int = 256, steps: int = 1000, dtype: str = "float64", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The random problem: start ``x0`` of shape (n,) and gradients of shape (steps, n).

    Parameters
    ----------
    n, steps : int
    dtype : {"float64", "float32"}
    seed : int

    Returns
    -------
    x0, grads : ndarray

    Examples
    --------
    >>> x0, grads = problem(n=4, steps=3)
    >>> x0.shape, grads.shape, grads.dtype
    ((4,), (3, 4), dtype('float64'))
    """
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.uniform(-3.0, 2.0, size=n)
    drift = rng.standard_normal(n)
    x0 = rng.standard_normal(n)
    grads = scale * (drift + rng.standard_normal((steps, n)))
    return x0.astype(dtype), grads.astype(dtype)


def run_adam_np(config, x0: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """Trajectory (steps, n) of :func:`adam_np.update` with ``config`` from ``x0``.

    Parameters
    ----------
    config : AdamConfig
    x0 : ndarray
    grads : ndarray

    Returns
    -------
    ndarray

    Examples
    --------
    >>> from adam_np import AdamConfig
    >>> run_adam_np(AdamConfig(lr=0.1), np.ones(1), np.ones((2, 1)))
    array([[0.9],
           [0.8]])
    """
    x, state = x0, init(x0, config)
    out = np.empty_like(grads)
    for i, g in enumerate(grads):
        x, state = update(g, state, x, config)
        out[i] = x
    return out


def run_torch(variant: str, x0: np.ndarray, grads: np.ndarray, lr: float) -> np.ndarray:
    """Trajectory of ``torch.optim`` (single-tensor path, ``foreach=False``) with torch's defaults.

    Parameters
    ----------
    variant : str
        One of ``FRAMEWORKS["torch"]``.
    x0, grads : ndarray
    lr : float

    Returns
    -------
    ndarray
    """
    import torch

    optim = torch.optim
    make = {
        "adam": lambda p: optim.Adam(p, lr=lr, foreach=False),
        "amsgrad": lambda p: optim.Adam(p, lr=lr, amsgrad=True, foreach=False),
        "adamw": lambda p: optim.AdamW(p, lr=lr, foreach=False),
        "adamax": lambda p: optim.Adamax(p, lr=lr, foreach=False),
        "nadam": lambda p: optim.NAdam(p, lr=lr, foreach=False),
        "radam": lambda p: optim.RAdam(p, lr=lr, foreach=False),
    }[variant]
    p = torch.tensor(x0)
    opt = make([p])
    out = np.empty_like(grads)
    for i, g in enumerate(grads):
        p.grad = torch.tensor(g)
        opt.step()
        out[i] = p.numpy()
    return out


def run_optax(variant: str, x0: np.ndarray, grads: np.ndarray, lr: float) -> np.ndarray:
    """Trajectory of the optax alias with optax's defaults (run inside ``jax.enable_x64(True)``, scoped).

    Parameters
    ----------
    variant : str
        One of ``FRAMEWORKS["optax"]``.
    x0, grads : ndarray
    lr : float

    Returns
    -------
    ndarray
    """
    import jax
    import optax

    with jax.enable_x64(True):  # float64 arrays stay float64; the global setting is left alone
        return _run_optax(jax, optax, variant, x0, grads, lr)


def _run_optax(jax, optax, variant, x0, grads, lr):
    jnp = jax.numpy
    tx = {"adam": optax.adam, "amsgrad": optax.amsgrad, "adamw": optax.adamw, "adamax": optax.adamax,
          "nadam": optax.nadam, "radam": optax.radam, "yogi": optax.yogi}[variant](lr)

    def body(carry, g):
        params, state = carry
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        return (params, state), params

    params = jnp.asarray(x0)
    _, traj = jax.jit(lambda p, gs: jax.lax.scan(body, (p, tx.init(p)), gs))(params, jnp.asarray(grads))
    return np.asarray(traj)


_RUNNERS: dict[str, Callable] = {"torch": run_torch, "optax": run_optax}


def _installed(framework: str) -> bool:
    module = {"torch": "torch", "optax": "optax"}[framework]
    return importlib.util.find_spec(module) is not None


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise distance between ``a`` and ``b`` in units in the last place (representable steps).

    Parameters
    ----------
    a, b : ndarray
        Same float dtype (float32 or float64).

    Returns
    -------
    ndarray of float64
        0 where equal, 1 for neighbours (across zero: +0 and -0 are both 0).

    Examples
    --------
    >>> ulp_distance(np.array([1.0, -0.0]), np.array([np.nextafter(1.0, 2.0), np.nextafter(0.0, 1.0)]))
    array([1., 1.])
    """
    itype = {4: np.int32, 8: np.int64}[a.dtype.itemsize]
    mask = itype(np.iinfo(itype).max)

    def ordered(x):  # integers in the order of the floats, -0.0 and +0.0 both 0
        i = np.ascontiguousarray(x).view(itype)
        return np.where(i < 0, -(i & mask), i)

    ia, ib = ordered(a), ordered(b)
    same = (ia >= 0) == (ib >= 0)  # exact integer difference; across zero add magnitudes (no overflow)
    exact = np.abs(np.where(same, ia, 0) - np.where(same, ib, 0)).astype(np.float64)
    return np.where(same, exact, np.abs(ia).astype(np.float64) + np.abs(ib).astype(np.float64))


def _compare(framework: str, variant: str, traj: np.ndarray, ref: np.ndarray, windows: int, tol: float) -> list[Row]:
    diff = np.max(np.abs(traj.astype(np.float64) - ref.astype(np.float64)), axis=1)
    scale = np.max(np.abs(ref.astype(np.float64)), axis=1)
    rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), diff)
    ulp = np.max(ulp_distance(traj, ref), axis=1)
    rows = []
    steps = len(traj)
    size = max(1, math.ceil(steps / max(1, windows)))
    for lo in range(0, steps, size):
        hi = min(steps, lo + size)
        w_rel = float(np.max(rel[lo:hi]))
        ok = bool(np.all(np.isfinite(traj[lo:hi]))) and w_rel <= tol
        rows.append(Row(framework, variant, f"{lo + 1}-{hi}", float(np.max(diff[lo:hi])), w_rel,
                        float(np.max(ulp[lo:hi])), tol, "pass" if ok else "FAIL"))
    return rows


def crosscheck(against: Sequence[str] = ("torch", "optax"), variants: Sequence[str] | None = None,
               steps: int = 1000, dtype: str = "float64", n: int = 256, seed: int = 0, windows: int = 4,
               lr: float = 1e-2) -> list[Row]:
    """Compare each framework's optimizers with adam_np's presets on one random problem.

    Parameters
    ----------
    against : {"torch", "optax"} or sequence of them
        Frameworks to compare with (one name may be given as a string).
    variants : str or sequence of str, optional
        Variants to run (default: all each framework has; an empty sequence is an error); a framework
        without any of them is skipped, also when it is not installed.
    steps, n, seed : int
        Problem size (:func:`problem`).
    dtype : {"float64", "float32"}
    windows : int
        Number of step windows per (framework, variant).
    lr : float
        Learning rate given to both sides (everything else: the framework's defaults).

    Returns
    -------
    list of Row
        A not-installed framework that has some of the requested variants gives one row with status
        ``"missing"``.

    Raises
    ------
    ValueError
        On an unknown framework, variant or dtype, an empty ``variants``, or steps/n/windows < 1.
    """
    if dtype not in TOLERANCES:
        raise ValueError(f"dtype must be one of {tuple(TOLERANCES)}, got {dtype!r}")
    for name, value in (("steps", steps), ("n", n), ("windows", windows)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if isinstance(against, str):
        against = (against,)
    if variants is not None:
        if isinstance(variants, str):
            variants = (variants,)
        if not variants:
            raise ValueError(f"variants must name at least one variant (None for all), got {variants!r}")
    for framework in against:
        if framework not in FRAMEWORKS:
            raise ValueError(f"against must name frameworks among {tuple(FRAMEWORKS)}, got {framework!r}")
    known = sorted({v for vs in FRAMEWORKS.values() for v in vs})
    for variant in variants or ():
        if variant not in known:
            raise ValueError(f"variant must be one of {known}, got {variant!r}")
    x0, grads = problem(n, steps, dtype, seed)
    tol = TOLERANCES[dtype]
    rows: list[Row] = []
    for framework in against:
        wanted = [v for v in FRAMEWORKS[framework] if variants is None or v in variants]
        if not wanted:  # the framework has none of the requested variants
            continue
        if not _installed(framework):
            rows.append(Row(framework, ",".join(wanted), "-", math.nan, math.nan, math.nan, tol, "missing"))
            continue
        preset = getattr(presets, framework)
        for variant in wanted:
            ref = _RUNNERS[framework](variant, x0, grads, lr)
            traj = run_adam_np(preset(variant, lr=lr), x0, grads)
            rows.extend(_compare(framework, variant, traj, ref, windows, tol))
    return rows


LEGEND = ("status: pass when normwise rel = max|x - x_ref| / max|x_ref| (over all parameters, at the worst step "
          "of the window) is within tol.\nmax ulp: the largest elementwise distance in units in the last place, for "
          "information only: it is large where a parameter passes near zero, where one ulp is tiny.")
"""What the table's columns mean (printed below it by ``adam-np crosscheck``)."""


def format_table(rows: Sequence[Row], dtype: str = "float64") -> str:
    """The rows as a Markdown table.

    Parameters
    ----------
    rows : sequence of Row
    dtype : str
        Shown in the header.

    Returns
    -------
    str

    Examples
    --------
    >>> print(format_table([Row("torch", "adam", "1-10", 1e-16, 2e-16, 1.0, 1e-12, "pass")]))
    | framework | variant | steps | max abs | normwise rel | max ulp | tol (float64) | status |
    |---|---|---|---|---|---|---|---|
    | torch | adam | 1-10 | 1.0e-16 | 2.0e-16 | 1 | 1e-12 | pass |
    """
    lines = [f"| framework | variant | steps | max abs | normwise rel | max ulp | tol ({dtype}) | status |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ulp = "-" if math.isnan(r.max_ulp) else f"{r.max_ulp:.0f}"
        num = "-" if math.isnan(r.max_abs) else None
        lines.append(f"| {r.framework} | {r.variant} | {r.steps} | {num or f'{r.max_abs:.1e}'} | "
                     f"{num or f'{r.max_rel:.1e}'} | {ulp} | {r.tol:.0e} | {r.status} |")
    return "\n".join(lines)


def preset_differences(dtype: str = "float32", steps: int = 1000, n: int = 256, seed: int = 0,
                       lr: float = 1e-2) -> list[tuple]:
    """How far the frameworks' conventions drift apart: presets run against each other, no framework needed.

    For every variant two or more frameworks have, each preset is compared with the torch preset (or,
    for Yogi, optax's) on :func:`problem`: once with each framework's defaults (ε, λ...), once with
    ε = 1e-8 and λ = 1e-2 for all, which leaves only the differences in the formulas and the order of
    operations. Also each preset in ``dtype`` against itself in float64 (its own rounding drift).

    Parameters
    ----------
    dtype : {"float32", "float64"}
    steps, n, seed : int
    lr : float

    Returns
    -------
    list of tuple
        ``(variant, framework, reference framework, rel. diff. with defaults, rel. diff. aligned,
        rel. diff. from its own float64 run)``: the largest normwise relative difference over the steps.

    Examples
    --------
    >>> rows = preset_differences(steps=20, n=8)
    >>> [r[:3] for r in rows if r[0] == "amsgrad"]
    [('amsgrad', 'optax', 'torch'), ('amsgrad', 'keras', 'torch')]
    """
    x0, grads = problem(n, steps, dtype, seed)
    x64, g64 = problem(n, steps, "float64", seed)

    def rel(a, b):
        a, b = a.astype(np.float64), b.astype(np.float64)
        return float(np.max(np.max(np.abs(a - b), axis=1) / np.maximum(np.max(np.abs(b), axis=1), 1e-300)))

    rows = []
    variants = {v: [f for f in presets.FRAMEWORKS if v in presets.FRAMEWORKS[f]]
                for f in presets.FRAMEWORKS for v in presets.FRAMEWORKS[f]}
    for variant, frameworks in variants.items():
        if len(frameworks) < 2:
            continue
        ref_fw = frameworks[0]
        ref_make = getattr(presets, ref_fw)
        aligned = {"eps": 1e-8, **({"weight_decay": 1e-2} if variant == "adamw" else {})}
        ref = run_adam_np(ref_make(variant, lr=lr), x0, grads)
        ref_aligned = run_adam_np(ref_make(variant, lr=lr, **aligned), x0, grads)
        for fw in frameworks[1:]:
            make = getattr(presets, fw)
            mine = run_adam_np(make(variant, lr=lr), x0, grads)
            mine_aligned = run_adam_np(make(variant, lr=lr, **aligned), x0, grads)
            own64 = run_adam_np(make(variant, lr=lr), x64, g64)
            rows.append((variant, fw, ref_fw, rel(mine, ref), rel(mine_aligned, ref_aligned), rel(mine, own64)))
    return rows
