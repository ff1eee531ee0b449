"""The one backend-aware module of the math: namespace resolution and array checks.

Everything below :func:`array_namespace` uses only standard array-API calls on the
namespace it returns, so the same code runs on NumPy, CuPy, torch tensors,
``array_api_strict`` and other array-API libraries. The backend-specific fast paths
live in :mod:`adam_np.kernels`; nothing else imports cupy or numba.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np
from array_api_compat import is_array_api_obj, is_cupy_array, is_dask_array, is_numpy_array, is_torch_array

__all__ = [
    "array_namespace",
    "backend_name",
    "device_of",
    "to_numpy",
    "is_writeable",
    "not_writeable_reason",
    "is_real_floating",
    "namespace_for",
    "is_lazy",
    "like_chunks",
    "persist",
    "persist_groups",
]


def backend_name(x: Any) -> str:
    """Return a short, human-readable name for the library that owns array ``x``.

    Parameters
    ----------
    x : array
        Any array-API array.

    Returns
    -------
    str
        ``"numpy"``, ``"cupy"``, ``"torch"``, or the top-level module name of the type.

    Examples
    --------
    >>> import numpy as np
    >>> backend_name(np.zeros(3))
    'numpy'
    """
    if is_numpy_array(x):
        return "numpy"
    if is_cupy_array(x):
        return "cupy"
    if is_torch_array(x):
        return "torch"
    return type(x).__module__.split(".")[0]


def array_namespace(*arrays: Any, name: str = "arrays") -> Any:
    """Resolve the array-API namespace shared by ``arrays``.

    Parameters
    ----------
    *arrays : array
        Arrays that must all come from the same library.
    name : str, optional
        What the arrays are called in error messages (``"params"``, ``"grads"``...).

    Returns
    -------
    namespace
        The array-API compatible namespace (``array_api_compat.numpy`` for NumPy arrays).

    Raises
    ------
    TypeError
        If an element is not an array, or the arrays come from different libraries.

    Examples
    --------
    >>> import numpy as np
    >>> xp = array_namespace(np.zeros(2), np.ones(3))
    >>> xp.__name__
    'array_api_compat.numpy'
    """
    for i, x in enumerate(arrays):
        if not is_array_api_obj(x) or isinstance(x, (int, float, complex, bool)):
            raise TypeError(f"{name}[{i}] must be an array, got {type(x).__name__}: {x!r:.80}")
    names = [backend_name(x) for x in arrays]
    if len(set(names)) > 1:
        raise TypeError(f"{name} mix array libraries: {names}; pass arrays of a single library")
    try:
        return array_api_compat.array_namespace(*arrays)
    except TypeError as exc:  # pragma: no cover - array_api_compat's own wording
        raise TypeError(f"{name} mix array libraries: {exc}") from None


def device_of(x: Any) -> Any:
    """The device array ``x`` lives on (``"cpu"`` for NumPy arrays), as :func:`array_api_compat.device` says.

    Parameters
    ----------
    x : array
        Any array-API array.

    Returns
    -------
    device
        The library's device object.

    Examples
    --------
    >>> import numpy as np
    >>> device_of(np.zeros(2))
    'cpu'
    """
    return array_api_compat.device(x)


def to_numpy(x: Any, name: str = "array") -> np.ndarray:
    """A C-contiguous NumPy copy (or view) of array ``x`` on the host: CuPy copied off the GPU, torch detached.

    Parameters
    ----------
    x : array
        Any array-API array.
    name : str, optional
        What ``x`` is called in the error message.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    TypeError
        For a torch dtype NumPy has no equivalent of (bfloat16), naming ``name``.

    Examples
    --------
    >>> import torch
    >>> to_numpy(torch.tensor([1.0, 2.0]))
    array([1., 2.], dtype=float32)
    """
    if is_cupy_array(x):
        x = x.get()
    elif is_torch_array(x):
        x = x.detach().cpu()
        try:
            x = x.numpy()
        except TypeError as exc:  # bfloat16 has no NumPy dtype
            msg = f"{name} has dtype {x.dtype}, which NumPy (and so a .npz file) cannot hold: {exc}"
            raise TypeError(msg) from None
    return np.ascontiguousarray(np.asarray(x))


def is_real_floating(x: Any, xp: Any) -> bool:
    """Whether ``x`` has a real floating-point dtype in namespace ``xp``.

    Parameters
    ----------
    x : array
        The array to test.
    xp : namespace
        Its array-API namespace.

    Returns
    -------
    bool

    Examples
    --------
    >>> import numpy as np, array_api_compat.numpy as xp
    >>> is_real_floating(np.zeros(2, dtype=np.float32), xp), is_real_floating(np.zeros(2, int), xp)
    (True, False)
    """
    return bool(xp.isdtype(x.dtype, "real floating"))


def is_writeable(x: Any) -> bool:
    """Whether array ``x`` can be updated in place (NumPy/CuPy/torch arrays that allow it).

    Parameters
    ----------
    x : array
        The array to test.

    Returns
    -------
    bool
        False for read-only NumPy views, torch leaf tensors that require grad, torch inference
        tensors outside inference mode, arrays whose elements overlap in memory (stride 0 on an
        axis of length > 1, e.g. ``torch.ones(3).expand(2, 3)``) and libraries without in-place
        mutation (JAX, ``array_api_strict``); :func:`not_writeable_reason` says which.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros(3); is_writeable(a)
    True
    >>> a.flags.writeable = False; is_writeable(a)
    False
    """
    return not_writeable_reason(x) is None


def not_writeable_reason(x: Any) -> str | None:
    """Why array ``x`` cannot be updated in place, or None when it can (see :func:`is_writeable`).

    Parameters
    ----------
    x : array
        The array to test.

    Returns
    -------
    str or None
        A short reason: a read-only NumPy array, a torch leaf tensor that requires grad (torch
        forbids in-place updates of those outside ``no_grad``; pass ``p.detach()`` or ``p.data``,
        which share its memory), a torch inference tensor outside inference mode, an array whose
        elements overlap in memory (a stride-0 broadcast such as ``expand``), or a library without
        in-place mutation.

    Examples
    --------
    >>> import numpy as np
    >>> not_writeable_reason(np.zeros(3)) is None
    True
    >>> not_writeable_reason(np.broadcast_to(np.zeros(1), (3,)))
    'a read-only NumPy array'
    """
    if is_numpy_array(x):
        return None if x.flags.writeable else "a read-only NumPy array"
    if is_cupy_array(x):
        return _overlap_reason(x.shape, [st // x.itemsize for st in x.strides])
    if is_torch_array(x):
        return _torch_reason(x)
    return f"{type(x).__module__.split('.')[0]} arrays cannot be updated in place"


def _overlap_reason(shape: Any, strides: Any) -> str | None:
    """A stride of 0 on an axis longer than 1: several elements share one memory location."""
    if any(n > 1 and st == 0 for n, st in zip(shape, strides)):
        return f"its elements overlap in memory (stride 0 on an axis of length > 1, strides {tuple(strides)})"
    return None


def _torch_reason(x: Any) -> str | None:
    import torch

    if x.requires_grad and x.is_leaf:
        return "a torch tensor that requires grad; pass p.detach() or p.data (same memory) instead"
    if x.is_inference() and not torch.is_inference_mode_enabled():
        return "a torch inference tensor (created under torch.inference_mode), outside inference mode"
    return _overlap_reason(x.shape, x.stride())


def namespace_for(backend: str) -> Any:
    """The array-API namespace of a backend named on the command line.

    Parameters
    ----------
    backend : {"numpy", "cupy"}

    Returns
    -------
    namespace
        ``array_api_compat.numpy`` or ``array_api_compat.cupy``.

    Raises
    ------
    ValueError
        For an unknown name.
    RuntimeError
        For ``"cupy"`` when CuPy is not installed or sees no CUDA device.

    Examples
    --------
    >>> namespace_for("numpy").__name__
    'array_api_compat.numpy'
    """
    if backend == "numpy":
        import array_api_compat.numpy as xp

        return xp
    if backend != "cupy":
        raise ValueError(f"backend must be one of ('numpy', 'cupy'), got {backend!r}")
    try:
        import cupy
    except ImportError as exc:
        raise RuntimeError(f"backend 'cupy' needs CuPy and a CUDA GPU: cupy is not installed ({exc})") from None
    try:
        available = bool(cupy.cuda.is_available())
    except Exception as exc:  # noqa: BLE001 - a broken CUDA runtime means: no usable device
        raise RuntimeError(f"backend 'cupy' needs a CUDA GPU: {type(exc).__name__}: {exc}") from None
    if not available:
        raise RuntimeError("backend 'cupy' needs a CUDA GPU, but CuPy finds no CUDA device on this machine")
    import array_api_compat.cupy as xp

    return xp


def is_lazy(x: Any) -> bool:
    """Whether ``x`` is a Dask array: a graph of chunk tasks, computed only by ``compute``/``persist``.

    Parameters
    ----------
    x : array

    Returns
    -------
    bool

    Examples
    --------
    >>> import numpy as np
    >>> is_lazy(np.zeros(2))
    False
    """
    return is_dask_array(x)


def like_chunks(a: Any, like: Any) -> Any:
    """Dask array ``a`` chunked as ``like`` (so a step's results keep the parameters' chunks).

    Parameters
    ----------
    a, like : dask.array.Array
        Of one shape.

    Returns
    -------
    dask.array.Array
        ``a`` itself when the chunks already agree.

    Examples
    --------
    >>> import dask.array as da
    >>> like_chunks(da.ones(6, chunks=4), da.zeros(6, chunks=3)).chunks
    ((3, 3),)
    """
    return a if a.chunks == like.chunks else a.rechunk(like.chunks)


def persist(arrays: list) -> list:
    """Compute Dask arrays together, in one graph, and keep the results where they were computed.

    On the active ``dask.distributed`` client when there is one (the chunks stay in the workers' memory;
    returns when all are computed, raising the first task error), else with Dask's default scheduler.
    A chunk that several of the arrays need (a gradient chunk read by the update and by the finiteness
    check) is computed once.

    Parameters
    ----------
    arrays : list of dask.array.Array

    Returns
    -------
    list of dask.array.Array
        The same arrays, each now backed by one computed chunk per task (the scheduler keeps the history
        that made them: :func:`adam_np._dask.cut_history` lets it go).

    Examples
    --------
    >>> import dask.array as da
    >>> x, y = persist([da.ones(4, chunks=2), da.zeros(4, chunks=2) + 1])
    >>> float((x + y).sum().compute())
    8.0
    """
    import dask

    arrays = list(dask.persist(*arrays))
    try:
        from distributed import futures_of, get_client, wait

        get_client()
    except (ImportError, ValueError):  # no distributed client: computed already, nothing kept for recomputation
        return arrays
    _wait_or_raise([f for a in arrays for f in futures_of(a)], wait)
    return arrays


def persist_groups(groups: list) -> list:
    """:func:`persist` over lists of arrays, in one graph; the same structure back (None stays None).

    Parameters
    ----------
    groups : list of (list of dask.array.Array or None) or None
        E.g. ``[params, v, s, master, s_max]``; a group or an entry may be None.

    Returns
    -------
    list
        The groups, each array replaced by its persisted self.

    Examples
    --------
    >>> import dask.array as da
    >>> (x,), missing, (y, none) = persist_groups([[da.ones(2)], None, [da.zeros(2), None]])
    >>> float(x.sum().compute()), missing, none
    (2.0, None, None)
    """
    done = iter(persist([a for xs in groups if xs is not None for a in xs if a is not None]))
    return [None if xs is None else [None if a is None else next(done) for a in xs] for xs in groups]


def _wait_or_raise(futures: list, wait: Any) -> None:
    """Wait for distributed futures; raise the first task error (a step returns finished or fails)."""
    wait(futures)
    for f in futures:
        if f.status != "finished":
            f.result()  # raises the task's exception (or CancelledError)
