"""In-place Adam step kernels: one module per backend, each with ``step(ps, gs, vs, ss, c, *, check)`` and ``DTYPES``.

``step`` updates each ``(p, v, s)`` in place with the :class:`adam_np.core.adam.Coefficients` ``c`` of
:func:`adam_np.core.adam.coefficients`, all or nothing (with ``check``, a step that would make a value NaN or
±inf writes nothing and returns False), computing bit for bit what :func:`adam_np.core.adam.adam_step` and
:func:`adam_np.update` compute (tested):

- ``"numpy"`` (:mod:`~adam_np.kernels.numpy_kernel`): cache-sized chunks with preallocated
  scratch, spread over a small thread pool; always available.
- ``"numba"`` (:mod:`~adam_np.kernels.numba_kernel`): one fused ``prange`` loop; needs the
  optional ``numba`` extra, compiled on first use and cached.
- ``"cupy"`` (:mod:`~adam_np.kernels.cupy_kernel`): one ``cupy.ElementwiseKernel`` launch.

``backend="auto"`` picks cupy for CuPy arrays, else numba when it is installed, else numpy. A kernel runs
a config exactly when :attr:`adam_np.AdamConfig.is_plain_adam` holds; :class:`adam_np.Adam` decides the path.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["BACKENDS", "available_backends", "get_kernel", "resolve_backend"]

BACKENDS = ("auto", "numpy", "numba", "cupy")
"""Accepted values of ``backend``."""

_MODULES = {"numpy": "numpy_kernel", "numba": "numba_kernel", "cupy": "cupy_kernel"}
_REQUIRES = {"numpy": "numpy", "numba": "numba", "cupy": "cupy"}


def available_backends() -> list[str]:
    """The kernel backends whose library is installed (without importing it).

    Returns
    -------
    list of str
        A sub-list of ``["numpy", "numba", "cupy"]``; ``"cupy"`` may still lack a GPU.

    Examples
    --------
    >>> available_backends()[0]
    'numpy'
    """
    return [name for name, lib in _REQUIRES.items() if importlib.util.find_spec(lib) is not None]


def resolve_backend(backend: str, array_library: str = "numpy") -> str:
    """The concrete backend that ``backend`` means for arrays of ``array_library``.

    Parameters
    ----------
    backend : {"auto", "numpy", "numba", "cupy"}
        ``"auto"``: ``"cupy"`` for CuPy arrays; for NumPy arrays ``"numba"`` if numba is
        installed, else ``"numpy"``.
    array_library : str, default "numpy"
        What :func:`adam_np.core._xp.backend_name` says of the parameters.

    Returns
    -------
    str or None
        The backend, or None when no kernel handles ``array_library`` (e.g. torch tensors).

    Raises
    ------
    ValueError
        On an unknown ``backend``, a backend that does not handle ``array_library``, or one
        whose library is not installed.

    Examples
    --------
    >>> resolve_backend("numpy")
    'numpy'
    >>> resolve_backend("auto", "torch") is None
    True
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        if array_library == "cupy":
            return "cupy"
        if array_library != "numpy":
            return None
        return "numba" if importlib.util.find_spec("numba") is not None else "numpy"
    wanted = "cupy" if backend == "cupy" else "numpy"
    if array_library != wanted:
        raise ValueError(f"backend={backend!r} updates {wanted} arrays, got {array_library} arrays")
    if importlib.util.find_spec(_REQUIRES[backend]) is None:
        raise ValueError(f"backend={backend!r} needs {_REQUIRES[backend]}, which is not installed "
                         f"(pip install adam-np[{'gpu' if backend == 'cupy' else backend}])")
    return backend


def get_kernel(backend: str) -> ModuleType:
    """The kernel module of a concrete backend, imported on first use.

    Parameters
    ----------
    backend : {"numpy", "numba", "cupy"}

    Returns
    -------
    module
        With ``step`` and ``DTYPES``.

    Examples
    --------
    >>> get_kernel("numpy").__name__
    'adam_np.kernels.numpy_kernel'
    """
    if backend not in _MODULES:
        raise ValueError(f"backend must be one of {tuple(_MODULES)}, got {backend!r}")
    return importlib.import_module(f"{__name__}.{_MODULES[backend]}")
