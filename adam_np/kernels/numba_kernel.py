r"""The numba kernel: one compiled call per step for all arrays, parallel (``prange``) for large arrays.

Each element is read once and written once; the loop body is :func:`adam_np.core.adam.adam_step` in
scalar form (with ``maximize``, L2 weight decay and the forms of :data:`adam_np.core.adam.OUTSIDE` ...),
the coefficients rounded to the array dtype once per call, as NumPy rounds a Python float. No
``fastmath``: LLVM neither contracts ``a*b + c`` into an FMA nor reassociates; ``error_model="numpy"``
makes ``x/0`` give ±inf/NaN as NumPy does; ``sqrt`` and ``/`` are correctly rounded, so the result is
bit-for-bit that of :func:`adam_np.update` on float32 and float64 (the tests check it).

With the check, the call first computes every array's step without writing (all or nothing), then writes;
numba's dispatch costs about 1 µs a call, so one call per step keeps small models fast.

Importing this module imports numba (the optional ``numba`` extra); compiled on first use and cached.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from ..core.adam import ROOT, SCALED, SCALED_ROOT, Coefficients

__all__ = ["DTYPES", "PARALLEL_MIN", "set_num_threads", "step", "step_into", "warm_up"]

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
"""The dtypes this kernel updates."""

PARALLEL_MIN = 1 << 18
"""Arrays of at least this many elements run the ``prange`` loop, smaller ones the serial one."""


def _adam(ps, gs, vs, ss, c, check, write):  # pragma: no cover - compiled by numba
    """Every array's step in one call (``ps, gs, vs, ss``: tuples of 1-D arrays of one dtype; ``c``: the first
    twelve fields of Coefficients): with ``check``, first a pass that writes nothing and returns False if any new
    value would be NaN or ±inf; with ``write``, then the pass that writes."""
    to = ps[0].dtype.type  # the coefficients rounded to the array dtype, as NumPy rounds a Python float
    form, maximize = c[0], c[1]  # c[7], lr_t, is in step_size
    weight_decay, beta1, one_minus_beta1, beta2, one_minus_beta2 = to(c[2]), to(c[3]), to(c[4]), to(c[5]), to(c[6])
    bc1, bc2, step_size, eps_t = to(c[8]), to(c[9]), to(c[10]), to(c[11])
    l2 = weight_decay != 0.0
    for writing in (False, True):
        if not (write if writing else check):
            continue
        for j in range(len(ps)):
            # One array per statement: numba 0.68's prange wrote nothing with `x_, g_, v_, s_ = ps[j], ...`
            x_ = ps[j]
            g_ = gs[j]
            v_ = vs[j]
            s_ = ss[j]
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
                if writing:  # g is read before v, s, x are written, so g may be its own x
                    v_[i], s_[i], x_[i] = vi, si, xi
                else:
                    bad += not ((vi - vi) + (si - si) + (xi - xi) == 0.0)  # x - x is NaN exactly for NaN, ±inf
            if bad:
                return False
    return True


_serial = numba.njit(cache=True, error_model="numpy")(_adam)
_parallel = numba.njit(cache=True, parallel=True, error_model="numpy")(_adam)


def _groups(ps: Sequence, gs: Sequence, vs: Sequence, ss: Sequence) -> list:
    """The arrays as ``(loop, (ps, gs, vs, ss))`` with tuples of 1-D arrays: one group per dtype and loop (serial
    below :data:`PARALLEL_MIN` elements, else ``prange``); a single group without copying the tuples' arrays when
    they are 1-D already (as :class:`adam_np.Adam` passes them)."""
    if type(ps) is tuple and type(gs) is tuple and type(vs) is tuple and type(ss) is tuple and ps:
        dtype, large = ps[0].dtype, ps[0].size >= PARALLEL_MIN
        for p in ps:
            if p.ndim != 1 or p.dtype != dtype or (p.size >= PARALLEL_MIN) != large:
                break
        else:
            return [(_parallel if large else _serial, (ps, gs, vs, ss))]
    groups: dict = {}
    for arrays in zip(ps, gs, vs, ss):
        p = arrays[0]
        loop = _parallel if p.size >= PARALLEL_MIN else _serial
        group = groups.setdefault((p.dtype, loop), ([], [], [], []))
        for xs, x in zip(group, arrays):
            xs.append(x.reshape(-1))
    return [(loop, tuple(map(tuple, group))) for (_, loop), group in groups.items()]


def step(ps: Sequence, gs: Sequence, vs: Sequence, ss: Sequence, c: Coefficients, *, check: bool = True) -> bool:
    """One Adam step in place on each ``(ps[i], gs[i], vs[i], ss[i])``; all or nothing.

    Tested bit for bit against :func:`adam_np.core.adam.adam_step` and :func:`adam_np.update`. One compiled call
    for all arrays (check and write), when they are 1-D, of one dtype and all below (or all from)
    :data:`PARALLEL_MIN` elements, else one per such group; tuples of 1-D arrays are taken as they are.

    Parameters
    ----------
    ps, gs, vs, ss : list or tuple of numpy.ndarray
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
    groups, k = _groups(ps, gs, vs, ss), c[:12]
    if len(groups) == 1:  # check and write in one call
        loop, arrays = groups[0]
        return loop(*arrays, k, check, True)
    if check and not all(loop(*arrays, k, True, False) for loop, arrays in groups):
        return False
    for loop, arrays in groups:
        loop(*arrays, k, False, True)
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
    new_p, new_v, new_s = (out[i].reshape(-1) for i in range(3))
    new_p[...], new_v[...], new_s[...] = p.reshape(-1), v.reshape(-1), s.reshape(-1)
    _serial((new_p,), (g.reshape(-1),), (new_v,), (new_s,), c[:12], False, True)


def warm_up(arrays: Sequence) -> None:
    """Compile (or load from numba's cache) the loops :func:`step` will run on ``arrays``, on empty arrays.

    :class:`adam_np.Adam` calls it when built, so that the first step does not pay numba's specialisation
    (one per dtype, number of arrays and loop: serial or ``prange``).

    Parameters
    ----------
    arrays : list or tuple of numpy.ndarray

    Examples
    --------
    >>> warm_up([np.ones((5, 1)), np.ones(1)])
    """
    arrays = tuple(arrays)
    for loop, (ps, _, _, _) in _groups(arrays, arrays, arrays, arrays):
        e = tuple(np.empty(0, p.dtype) for p in ps)
        loop(e, e, e, e, (0, False, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0), True, True)


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
