r"""The CuPy kernel: one ``cupy.ElementwiseKernel`` launch per array and step, updating p, v, s together.

The kernel body is the scalar form of :func:`adam_np.core.adam._adam_leaf`, in the compute type
``C`` (``float`` for float16 and float32 parameters, ``double`` for float64); the per-step
coefficients enter as scalars of that type and the parameters, moments and gradient are
converted on load and store (float16 parameters are computed in float32, as Chainer does).
It is compiled with ``--fmad=false`` so that NVRTC does not contract ``a*b + c`` into an FMA:
with CUDA's correctly rounded ``sqrt`` and ``/`` the float32/float64 result is then
bit-for-bit that of :func:`adam_np.update` on the same CuPy arrays. A float16 result equals the
float32 pure update rounded once to float16.

CuPy is imported lazily, on the first call, so this module imports (and lints) without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import Coefficients

__all__ = ["DTYPES", "OPERATION", "all_finite", "compute_dtype", "finite_step_many", "prepare", "step", "step_many"]

DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
"""The parameter dtypes this kernel updates."""

OPERATION = """
C x = (C)p;
C gi = (C)g;
if (maximize) gi = -gi;
if (decay) gi = gi + wd * x;
C vi = b1 * (C)v + omb1 * gi;
C si = b2 * (C)s + omb2 * (gi * gi);
v = (P)vi;
s = (P)si;
C upd;
if (mode == 2) {
    upd = alpha * vi / (sqrt(si) + eps);
} else if (mode == 3) {
    upd = alpha * vi / sqrt(si + eps);
} else if (mode == 1) {
    upd = lr * (vi / bc1) / sqrt(si / bc2 + eps);
} else {
    upd = lr * (vi / bc1) / (sqrt(si / bc2) + eps);
}
p = (P)(x - upd);
"""
"""The CUDA C body, one element: ``P`` is the parameter type, ``C`` the compute type."""

_SCALARS = ("wd", "b1", "omb1", "b2", "omb2", "lr", "bc1", "bc2", "alpha", "eps")
_C_NAMES = {"float32": "float", "float64": "double"}
_kernels: dict[str, Any] = {}
_checks: dict[str, Any] = {}

_CHECK = """
template <typename P>
__device__ int adam_np_bad(P p, P g, P v, P s, C wd, C b1, C omb1, C b2, C omb2, C lr, C bc1, C bc2, C alpha,
                           C eps, int mode, int maximize, int decay) {
""" + OPERATION + """
    return !(isfinite((C)p) && isfinite((C)v) && isfinite((C)s));
}
"""
"""The check of :func:`finite_step_many`: :data:`OPERATION` on copies of one element (p, v, s are passed by
value, so its stores stay local), 1 when the values it would store are not all finite."""


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype the kernel computes in for parameters of ``dtype``: float64 for float64, else float32.

    Parameters
    ----------
    dtype : numpy.dtype

    Returns
    -------
    numpy.dtype

    Examples
    --------
    >>> compute_dtype(np.dtype("float16")), compute_dtype(np.dtype("float64"))
    (dtype('float32'), dtype('float64'))
    """
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _kernel(compute: np.dtype) -> Any:
    """The ElementwiseKernel for compute dtype ``compute`` (built once, compiled by CuPy on first launch)."""
    kernel = _kernels.get(compute.name)
    if kernel is None:
        import cupy

        in_params = ", ".join(["P g"] + [f"{compute.name} {name}" for name in _SCALARS]
                              + ["int32 mode", "int32 maximize", "int32 decay"])
        kernel = _kernels[compute.name] = cupy.ElementwiseKernel(
            in_params, "P p, P v, P s", f"typedef {_C_NAMES[compute.name]} C;\n" + OPERATION,
            name=f"adam_np_step_{compute.name}", options=("--fmad=false",), no_return=True,
        )
    return kernel


def _check_kernel(compute: np.dtype) -> Any:
    """The ReductionKernel of :func:`finite_step_many` for compute dtype ``compute`` (built once)."""
    kernel = _checks.get(compute.name)
    if kernel is None:
        import cupy

        in_params = ", ".join(["P p, P g, P v, P s"] + [f"{compute.name} {name}" for name in _SCALARS]
                              + ["int32 mode", "int32 maximize", "int32 decay"])
        kernel = _checks[compute.name] = cupy.ReductionKernel(
            in_params, "int32 bad", "adam_np_bad(p, g, v, s, " + ", ".join(_SCALARS) + ", mode, maximize, decay)",
            "max(a, b)", "bad = a", "0", name=f"adam_np_check_{compute.name}",
            preamble=f"typedef {_C_NAMES[compute.name]} C;\n" + _CHECK, options=("--fmad=false",),
        )
    return kernel


def finite_step_many(ps: list, gs: list, vs: list, ss: list, c: Coefficients, work: Any = None) -> bool:
    """Whether :func:`step_many` would leave every ``p``, ``v``, ``s`` finite: one reduction per array that
    computes the step's values (:data:`OPERATION`) and writes nothing; synchronises the device.

    A non-finite gradient makes the new ``v`` non-finite, so this checks the gradients too.

    Parameters
    ----------
    ps, gs, vs, ss : list of cupy.ndarray
    c : Coefficients
    work : None
        Unused.

    Returns
    -------
    bool

    Examples
    --------
    With no arrays there is nothing to check (and no device is needed):

    >>> from adam_np import AdamConfig
    >>> from adam_np.kernels import coefficients
    >>> finite_step_many([], [], [], [], coefficients(AdamConfig(), 0.5, 1))
    True
    """
    k = c.constants
    flags = [np.int32(k.mode), np.int32(k.maximize), np.int32(k.weight_decay != 0.0)]
    bad = []
    for p, g, v, s in zip(ps, gs, vs, ss):
        compute = compute_dtype(p.dtype)
        bad.append(_check_kernel(compute)(p, g, v, s, *[compute.type(f) for f in c.floats()], *flags))
    return not any(int(b) for b in bad)


def step(p: Any, g: Any, v: Any, s: Any, c: Coefficients) -> None:
    """One Adam step in place on CuPy arrays of one shape and one dtype in :data:`DTYPES`.

    Parameters
    ----------
    p, g, v, s : cupy.ndarray
        Parameters, gradient, first and second moment; ``p``, ``v``, ``s`` are overwritten
        by one kernel launch. ``g`` may be one of them (the same elements), but must not partially overlap them.
    c : Coefficients
        From :func:`adam_np.kernels.coefficients`; rounded to the compute type here.

    Examples
    --------
    On a CUDA device (the GPU tests run this)::

        import cupy as cp
        p, v, s = cp.array([1.0, -2.0]), cp.zeros(2), cp.zeros(2)
        step(p, cp.array([0.5, -4.0]), v, s, coefficients(AdamConfig(), 0.1, 1))
        # p: array([ 0.9, -1.9])

    The scalars it passes for float32 parameters:

    >>> from adam_np import AdamConfig
    >>> from adam_np.kernels import coefficients
    >>> c = coefficients(AdamConfig(), 0.1, 1)
    >>> [compute_dtype(np.dtype("float32")).type(f) for f in c.floats()][5]
    np.float32(0.1)
    """
    compute = compute_dtype(p.dtype)
    scalars = [compute.type(f) for f in c.floats()]
    k = c.constants
    flags = [np.int32(k.mode), np.int32(k.maximize), np.int32(k.weight_decay != 0.0)]
    _kernel(compute)(g, *scalars, *flags, p, v, s)


def prepare(k: Any) -> None:
    """No per-optimizer work array is needed here (see :func:`adam_np.kernels.numba_kernel.prepare`).

    Parameters
    ----------
    k : Constants

    Examples
    --------
    >>> prepare(None) is None
    True
    """
    return None


def step_many(ps: list, gs: list, vs: list, ss: list, c: Coefficients, work: Any = None) -> None:
    """:func:`step` on each ``(ps[i], gs[i], vs[i], ss[i])``: one launch per array.

    Parameters
    ----------
    ps, gs, vs, ss : list of cupy.ndarray
    c : Coefficients
    work : None
        Unused (accepted for a uniform interface).

    Examples
    --------
    On a CUDA device::

        ps = [cp.ones(2)]
        step_many(ps, ps, [cp.zeros(2)], [cp.zeros(2)], coefficients(AdamConfig(), 0.5, 1))
        # ps: [array([0.5, 0.5])]

    With no arrays it launches nothing (and needs no device):

    >>> from adam_np import AdamConfig
    >>> from adam_np.kernels import coefficients
    >>> step_many([], [], [], [], coefficients(AdamConfig(), 0.5, 1))
    """
    for p, g, v, s in zip(ps, gs, vs, ss):
        step(p, g, v, s, c)


def all_finite(g: Any) -> bool:
    """Whether a CuPy array holds no NaN and no ±inf (one reduction; synchronises the device).

    Parameters
    ----------
    g : cupy.ndarray

    Returns
    -------
    bool

    Examples
    --------
    On a CUDA device::

        all_finite(cp.array([1.0, cp.nan]))  # False
    """
    import cupy

    return bool(cupy.isfinite(g).all())
