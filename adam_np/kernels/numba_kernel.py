r"""The numba kernel: one fused loop per array and step, parallel (``prange``) for large arrays.

Each element is read once and written once; the loop body is :func:`adam_np.core.adam.adam_step` in
scalar form (with ``maximize``, L2 weight decay and the forms of :data:`adam_np.core.adam.OUTSIDE` ...),
the coefficients rounded to the array dtype once per call, as NumPy rounds a Python float. No
``fastmath``: LLVM neither contracts ``a*b + c`` into an FMA nor reassociates; ``error_model="numpy"``
makes ``x/0`` give ±inf/NaN as NumPy does; ``sqrt`` and ``/`` are correctly rounded, so the result is
bit-for-bit that of :func:`adam_np.update` on float32 and float64 (the tests check it).

Importing this module imports numba (the optional ``numba`` extra); compiled on first use and cached.
"""

from __future__ import annotations

import struct

import numba
import numpy as np

from ..core.adam import ROOT, SCALED, SCALED_ROOT, Coefficients

__all__ = ["DTYPES", "PARALLEL_MIN", "set_num_threads", "step", "step_into", "warm_up"]

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
"""The dtypes this kernel updates."""

PARALLEL_MIN = 1 << 18
"""Arrays of at least this many elements run the ``prange`` loop, smaller ones the serial one."""

_pack = struct.Struct("12d").pack  # Coefficients[:12] as one float64 array: numba dispatches arrays fastest


def _adam(p, g, v, s, c, p_out, v_out, s_out):  # pragma: no cover - compiled by numba
    """The step on every element; ``p_out`` None: write nothing, return whether all new values are finite."""
    x_, g_, v_, s_ = p.reshape(-1), g.reshape(-1), v.reshape(-1), s.reshape(-1)
    if p_out is None:  # the check: nothing is written (numba prunes the branch not taken at compile time)
        xo_ = vo_ = so_ = np.empty(0, p.dtype)
    else:
        xo_, vo_, so_ = p_out.reshape(-1), v_out.reshape(-1), s_out.reshape(-1)
    k = c.astype(p.dtype)  # the coefficients in the array dtype (Coefficients' field order)
    form, maximize, l2 = int(c[0]), c[1] != 0.0, c[2] != 0.0
    weight_decay, beta1, one_minus_beta1, beta2, one_minus_beta2 = k[2], k[3], k[4], k[5], k[6]
    bc1, bc2, step_size, eps_t = k[8], k[9], k[10], k[11]
    bad = 0
    for i in numba.prange(x_.shape[0]):
        x, gi = x_[i], g_[i]
        if maximize:
            gi = -gi
        if l2:
            gi = gi + weight_decay * x
        vi = beta1 * v_[i] + one_minus_beta1 * gi
        si = beta2 * s_[i] + one_minus_beta2 * (gi * gi)
        if form == SCALED:
            xi = x - step_size * vi / (np.sqrt(si) + eps_t)
        elif form == SCALED_ROOT:
            xi = x - step_size * vi / np.sqrt(si + eps_t)
        elif form == ROOT:
            xi = x - step_size * (vi / bc1) / np.sqrt(si / bc2 + eps_t)
        else:  # OUTSIDE
            xi = x - step_size * (vi / bc1) / (np.sqrt(si / bc2) + eps_t)
        if p_out is None:
            bad += not ((vi - vi) + (si - si) + (xi - xi) == 0.0)  # x - x is NaN exactly for NaN, ±inf
        else:
            vo_[i], so_[i], xo_[i] = vi, si, xi
    return bad == 0


_serial = numba.njit(cache=True, error_model="numpy")(_adam)
_parallel = numba.njit(cache=True, parallel=True, error_model="numpy")(_adam)


def step(ps: list, gs: list, vs: list, ss: list, c: Coefficients, *, check: bool = True) -> bool:
    """One Adam step in place on each ``(ps[i], gs[i], vs[i], ss[i])``; all or nothing.

    Tested bit for bit against :func:`adam_np.core.adam.adam_step` and :func:`adam_np.update`.

    Parameters
    ----------
    ps, gs, vs, ss : list of numpy.ndarray
        C-contiguous float32/float64 arrays, one shape and dtype per ``i``; ``p``, ``v``, ``s`` are
        overwritten. ``g`` may be its own ``p`` (the same elements), but must not overlap another array.
    c : Coefficients
        From :func:`adam_np.core.adam.coefficients`.
    check : bool, default True
        First compute the step without writing: if any new ``p``, ``v`` or ``s`` would be NaN or ±inf
        (a non-finite gradient makes ``v`` so), write nothing and return False.

    Returns
    -------
    bool
        Whether the step was written.

    Examples
    --------
    >>> from adam_np import AdamConfig
    >>> from adam_np.core.adam import coefficients
    >>> p, v, s = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    >>> step([p], [np.array([0.5, -4.0])], [v], [s], coefficients(AdamConfig(lr=0.1), 1)), p
    (True, array([ 0.9, -1.9]))
    >>> step([p], [np.array([np.nan, 1.0])], [v], [s], coefficients(AdamConfig(lr=0.1), 2)), p
    (False, array([ 0.9, -1.9]))
    """
    k = np.frombuffer(_pack(*c[:12]))
    if check:
        for p, g, v, s in zip(ps, gs, vs, ss):
            if not (_serial if p.size < PARALLEL_MIN else _parallel)(p, g, v, s, k, None, None, None):
                return False
    for p, g, v, s in zip(ps, gs, vs, ss):
        (_serial if p.size < PARALLEL_MIN else _parallel)(p, g, v, s, k, p, v, s)
    return True


def step_into(p: np.ndarray, g: np.ndarray, v: np.ndarray, s: np.ndarray, out: np.ndarray, c: Coefficients) -> None:
    """:func:`step` out of place and serial: the new ``p, v, s`` into ``out[0], out[1], out[2]`` (no check).

    For callers that own one thread each, such as the tasks of a Dask worker
    (:mod:`adam_np.kernels.dask_chunks`); bit for bit what :func:`step` writes.

    Parameters
    ----------
    p, g, v, s : numpy.ndarray
        C-contiguous, one shape and dtype (read-only arrays are fine).
    out : numpy.ndarray
        C-contiguous, shape ``(3, *p.shape)``, same dtype, overlapping none of the inputs.
    c : Coefficients

    Examples
    --------
    >>> from adam_np import AdamConfig
    >>> from adam_np.core.adam import coefficients
    >>> out = np.empty((3, 2))
    >>> step_into(np.array([1.0, -2.0]), np.array([0.5, -4.0]), np.zeros(2), np.zeros(2), out,
    ...           coefficients(AdamConfig(lr=0.1), 1))
    >>> out[0]
    array([ 0.9, -1.9])
    """
    _serial(p, g, v, s, np.frombuffer(_pack(*c[:12])), out[0], out[1], out[2])


def warm_up(arrays: list) -> None:
    """Compile (or load from numba's cache) the loops ``arrays`` will use, on empty arrays (nothing written).

    :class:`adam_np.Adam` calls it when built, so that the first step does not pay numba's specialisation.

    Parameters
    ----------
    arrays : list of numpy.ndarray

    Examples
    --------
    >>> warm_up([np.ones((5, 1)), np.ones(1)])
    """
    k = np.zeros(12)
    for a in arrays:
        e = np.empty((0,) * a.ndim, a.dtype)
        loop = _serial if a.size < PARALLEL_MIN else _parallel
        loop(e, e, e, e, k, None, None, None)
        loop(e, e, e, e, k, e, e, e)


def set_num_threads(n: int) -> int:
    """Run the ``prange`` loops on ``n`` threads (at most numba's ``NUMBA_NUM_THREADS``).

    Parameters
    ----------
    n : int

    Returns
    -------
    int
        The previous number.

    Examples
    --------
    >>> old = set_num_threads(1); set_num_threads(old)
    1
    """
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    return old
