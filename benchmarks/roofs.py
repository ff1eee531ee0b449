"""Memory roofs: loops with one Adam step's memory traffic and trivial arithmetic, compiled by numba.

Read p, g, v, s and write p, v, s (``x + (g - g)``: the values stay, so benchmarks can share the buffers):
28 bytes per float32 element, 56 per float64, as the step. The time such a loop takes is what the machine can
do at best for that traffic; the benchmarks report the kernels against it. Needs numba (the ``numba`` extra).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["PARALLEL_MIN", "stream_roof", "stream_roof_into"]

PARALLEL_MIN = 1 << 18
"""Arrays of at least this many elements run the parallel loop, smaller ones the serial one (as the kernel)."""


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _roof_loop(p, g, v, s):  # pragma: no cover - compiled by numba
    for i in numba.prange(p.shape[0]):
        gi = g[i] - g[i]  # 0 for finite g, in g's dtype: the values stay (no fast-math: LLVM keeps it)
        p[i] = p[i] + gi
        v[i] = v[i] + gi
        s[i] = s[i] + gi


@numba.njit(cache=True, error_model="numpy")
def _roof_serial(p, g, v, s):  # pragma: no cover - compiled by numba
    for i in range(p.shape[0]):
        gi = g[i] - g[i]
        p[i] = p[i] + gi
        v[i] = v[i] + gi
        s[i] = s[i] + gi


@numba.njit(cache=True, error_model="numpy")
def _roof_into(p, g, v, s, po, vo, so):  # pragma: no cover - compiled by numba
    p, g, v, s = p.reshape(-1), g.reshape(-1), v.reshape(-1), s.reshape(-1)
    po, vo, so = po.reshape(-1), vo.reshape(-1), so.reshape(-1)
    for i in range(p.shape[0]):
        gi = g[i] - g[i]
        po[i] = p[i] + gi
        vo[i] = v[i] + gi
        so[i] = s[i] + gi


def stream_roof(p: np.ndarray, g: np.ndarray, v: np.ndarray, s: np.ndarray) -> None:
    """Read p, g, v, s and write p, v, s in place, in parallel from :data:`PARALLEL_MIN` elements on.

    Parameters
    ----------
    p, g, v, s : numpy.ndarray
        1-D contiguous arrays of one dtype; ``p``, ``v``, ``s`` are written (with their own values).

    Examples
    --------
    >>> a = [np.full(3, 2.0) for _ in range(4)]
    >>> stream_roof(*a); a[0]                      # the values stay: benchmarks share the buffers
    array([2., 2., 2.])
    """
    (_roof_loop if p.shape[0] >= PARALLEL_MIN else _roof_serial)(p, g, v, s)


def stream_roof_into(p: np.ndarray, g: np.ndarray, v: np.ndarray, s: np.ndarray, out: np.ndarray) -> None:
    """:func:`stream_roof` out of place and serial, as a Dask chunk task: read p, g, v, s, write ``out[0:3]``.

    Parameters
    ----------
    p, g, v, s : numpy.ndarray
    out : numpy.ndarray
        Shape ``(3, *p.shape)``.

    Examples
    --------
    >>> out = np.empty((3, 2)); stream_roof_into(*[np.full(2, 2.0)] * 4, out); out[2]
    array([2., 2.])
    """
    _roof_into(p, g, v, s, out[0], out[1], out[2])
