"""Adam on Dask arrays with a kernel per chunk: one task per chunk takes the whole step for that chunk.

Dask arrays are immutable, so a step writes new chunks: the task writes the chunk's new ``p``, ``v``, ``s``
into one new ``(3, *chunk)`` block, with numba in one pass (:func:`adam_np.kernels.numba_kernel.step_into`:
read p, g, v, s, write the block), with the NumPy kernel in place on a copy; ``p``, ``v``, ``s`` of the
result are views of that block. What the kernel computes is what
:func:`adam_np.update` computes, bit for bit (tested), so this is the same step as ``update`` on the
same Dask arrays, in one fused pass per chunk instead of a dozen NumPy temporaries.
:class:`adam_np.Adam` uses it for Dask arrays of a plain-Adam config, else :func:`adam_np.update`.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
from dask.base import tokenize

from ..core.adam import Coefficients
from . import get_kernel

__all__ = ["step"]


def _chunk_step(p: np.ndarray, g: np.ndarray, v: np.ndarray, s: np.ndarray, c: Coefficients,
                backend: str) -> np.ndarray:
    """One chunk's step into a new ``(3, *chunk)`` block: numba in one pass (read p, g, v, s, write the
    block), the NumPy kernel in place on a copy. No floating-point warnings on the worker: the optimizer checks the
    new chunks' finiteness itself (``nonfinite="raise"``/``"skip"``), or lets NaN/inf through (``"propagate"``)."""
    out = np.empty((3, *p.shape), p.dtype)
    p, g, v, s = (np.ascontiguousarray(a).reshape(-1) for a in (p, g, v, s))
    flat = out.reshape(3, -1)  # views: the kernels step flat arrays
    with np.errstate(all="ignore"):
        if backend == "numba":
            get_kernel(backend).step_into(p, g, v, s, flat, c)
        else:
            flat[0], flat[1], flat[2] = p, v, s
            get_kernel(backend).step([flat[0]], [g], [flat[1]], [flat[2]], c, check=False)
    return out


def step(params: list, grads: list, v: list, s: list, c: Coefficients, backend: str, *,
         owner: str | None = None) -> tuple[list, list, list]:
    """The lazy new ``(params, v, s)``: per chunk one task that runs the kernel on copies.

    Parameters
    ----------
    params, grads, v, s : list of dask.array.Array
        Aligned, equal shapes, chunks and dtypes (grads are rechunked to the parameters' chunks).
    c : Coefficients
        From :func:`adam_np.core.adam.coefficients` for the step taken.
    backend : {"numba", "numpy"}
    owner : str, optional
        A token mixed into the new arrays' keys (:class:`adam_np.Adam` passes one per optimizer), so that two
        optimizers stepping equal arrays never share a key; without it the keys depend on the inputs only.

    Returns
    -------
    tuple of three lists of dask.array.Array
        New parameters, first and second moments (nothing computed yet).

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> from adam_np import AdamConfig
    >>> from adam_np.core.adam import coefficients
    >>> (p,), (v,), (s,) = step([da.ones(4, chunks=2)], [da.ones(4, chunks=2)], [da.zeros(4, chunks=2)],
    ...                         [da.zeros(4, chunks=2)], coefficients(AdamConfig(lr=0.1), 1), "numpy")
    >>> p.compute()
    array([0.9, 0.9, 0.9, 0.9])
    """
    new_p, new_v, new_s = [], [], []
    for x, g, m, q in zip(params, grads, v, s):
        g = g.rechunk(x.chunks)
        name = None if owner is None else "adam_np-step-" + tokenize(owner, x, g, m, q, c, backend)
        block = da.map_blocks(_chunk_step, x, g, m, q, c, backend, new_axis=0, chunks=((3,), *x.chunks),
                              dtype=x.dtype, meta=np.empty((0,) * (x.ndim + 1), x.dtype), name=name)
        new_p.append(block[0])
        new_v.append(block[1])
        new_s.append(block[2])
    return new_p, new_v, new_s
