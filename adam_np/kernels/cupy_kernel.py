r"""The CuPy kernel: one ``cupy.ElementwiseKernel`` launch per array and step, updating p, v, s together.

The kernel body is :func:`adam_np.core.adam.adam_step` in scalar form, in the compute type ``C``
(``float`` for float16 and float32 parameters, ``double`` for float64); the coefficients enter as scalars
of that type and the arrays are converted on load and store (float16 parameters are computed in float32,
as Chainer does). Compiled with ``--fmad=false`` so that NVRTC does not contract ``a*b + c`` into an FMA:
with CUDA's correctly rounded ``sqrt`` and ``/`` the float32/float64 result is bit-for-bit that of
:func:`adam_np.update` on the same CuPy arrays. CuPy is imported on the first launch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.adam import ROOT, SCALED, SCALED_ROOT, Coefficients

__all__ = ["DTYPES", "OPERATION", "compute_dtype", "step"]

DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
"""The parameter dtypes this kernel updates."""

_PREAMBLE = f"#define FORM_ROOT {ROOT}\n#define FORM_SCALED {SCALED}\n#define FORM_SCALED_ROOT {SCALED_ROOT}\n"

OPERATION = """
C x = (C)p;
C gi = (C)g;
if (maximize) gi = -gi;
if (l2) gi = gi + weight_decay * x;
C vi = beta1 * (C)v + one_minus_beta1 * gi;
C si = beta2 * (C)s + one_minus_beta2 * (gi * gi);
v = (P)vi;
s = (P)si;
C upd;
if (form == FORM_SCALED) {
    upd = step_size * vi / (sqrt(si) + eps_t);
} else if (form == FORM_SCALED_ROOT) {
    upd = step_size * vi / sqrt(si + eps_t);
} else if (form == FORM_ROOT) {
    upd = step_size * (vi / bc1) / sqrt(si / bc2 + eps_t);
} else {
    upd = step_size * (vi / bc1) / (sqrt(si / bc2) + eps_t);
}
p = (P)(x - upd);
"""
"""The CUDA C body, one element: ``P`` is the parameter type, ``C`` the compute type."""

_SCALARS = ("weight_decay", "beta1", "one_minus_beta1", "beta2", "one_minus_beta2", "lr_t", "bc1", "bc2",
            "step_size", "eps_t")  # Coefficients[2:12]
_FLAGS = ("form", "maximize", "l2")
_C_NAMES = {"float32": "float", "float64": "double"}
_kernels: dict[tuple, Any] = {}

_CHECK = """
template <typename P>
__device__ int adam_np_bad(P p, P g, P v, P s, """ + ", ".join(f"C {n}" for n in _SCALARS) + """,
                           int form, int maximize, int l2) {
""" + OPERATION + """
    return !(isfinite((C)p) && isfinite((C)v) && isfinite((C)s));
}
"""
"""The check: :data:`OPERATION` on copies of one element (passed by value, so its stores stay local)."""


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


def _kernel(compute: np.dtype, check: bool) -> Any:
    """The step's ElementwiseKernel, or the check's ReductionKernel, for ``compute`` (built once)."""
    key = (compute.name, check)
    if key not in _kernels:
        import cupy

        scalars = [f"{compute.name} {name}" for name in _SCALARS] + [f"int32 {name}" for name in _FLAGS]
        preamble = _PREAMBLE + f"typedef {_C_NAMES[compute.name]} C;\n"
        if check:
            _kernels[key] = cupy.ReductionKernel(
                ", ".join(["P p, P g, P v, P s", *scalars]), "int32 bad",
                "adam_np_bad(p, g, v, s, " + ", ".join(_SCALARS + _FLAGS) + ")", "max(a, b)", "bad = a", "0",
                name=f"adam_np_check_{compute.name}", preamble=preamble + _CHECK, options=("--fmad=false",))
        else:
            _kernels[key] = cupy.ElementwiseKernel(
                ", ".join(["P g", *scalars]), "P p, P v, P s", OPERATION, name=f"adam_np_step_{compute.name}",
                preamble=preamble, options=("--fmad=false",), no_return=True)
    return _kernels[key]


def _args(c: Coefficients, dtype: np.dtype) -> list:
    compute = compute_dtype(dtype)
    return [*(compute.type(f) for f in c[2:12]), np.int32(c.form), np.int32(c.maximize),
            np.int32(c.weight_decay != 0.0)]


def step(ps: list, gs: list, vs: list, ss: list, c: Coefficients, *, check: bool = True) -> bool:
    """One Adam step in place on each ``(ps[i], gs[i], vs[i], ss[i])`` (one launch per array); all or nothing.

    Tested bit for bit against :func:`adam_np.core.adam.adam_step` and :func:`adam_np.update` (GPU tests).

    Parameters
    ----------
    ps, gs, vs, ss : list of cupy.ndarray
        One shape and a dtype of :data:`DTYPES` per ``i``; ``p``, ``v``, ``s`` are overwritten.
    c : Coefficients
        From :func:`adam_np.core.adam.coefficients`; rounded to the compute type here.
    check : bool, default True
        First one reduction per array computes the step without writing; if any new value would be
        NaN or ±inf, write nothing and return False (synchronises the device).

    Returns
    -------
    bool
        Whether the step was written.

    Examples
    --------
    With no arrays nothing is launched (and no device is needed):

    >>> from adam_np import AdamConfig
    >>> from adam_np.core.adam import coefficients
    >>> step([], [], [], [], coefficients(AdamConfig(), 1))
    True
    """
    if check:
        bad = [_kernel(compute_dtype(p.dtype), True)(p, g, v, s, *_args(c, p.dtype))
               for p, g, v, s in zip(ps, gs, vs, ss)]
        if any(int(b) for b in bad):
            return False
    for p, g, v, s in zip(ps, gs, vs, ss):
        _kernel(compute_dtype(p.dtype), False)(g, *_args(c, p.dtype), p, v, s)
    return True
