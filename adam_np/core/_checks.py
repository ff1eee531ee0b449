"""Validation helpers of the core: numbers, step counters, and the leaves of a parameter tree.

Each check raises a ``TypeError`` or ``ValueError`` that names the argument, its value and what was
expected; none of them computes or mutates anything.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from . import _tree
from ._xp import array_namespace, backend_name, device_of, is_real_floating


def _real(name: str, value: Any) -> float:
    """``value`` as a Python float, or TypeError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}: {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _check_lr(value: float, name: str = "lr") -> float:
    value = _real(name, value)
    if not value > 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, (list, tuple, dict))


def _flatten(tree: Any, name: str):
    return _tree.flatten(tree, is_leaf=_is_array, name=name)


def _moment_dtype(x: Any, moment_dtype: Any, xp: Any) -> Any:
    """The moment dtype for parameter ``x``: ``moment_dtype`` checked, or the default."""
    if moment_dtype is None:
        return xp.float32 if xp.finfo(x.dtype).bits < 32 else x.dtype
    try:
        probe = xp.zeros((), dtype=moment_dtype)
    except (TypeError, ValueError, AttributeError, RuntimeError):
        raise TypeError(f"moment_dtype must be a dtype of {xp.__name__}, got {moment_dtype!r}") from None
    if not is_real_floating(probe, xp):
        raise TypeError(f"moment_dtype must be a real floating dtype, got {moment_dtype!r}")
    return probe.dtype


def _check_floating(name: str, x: Any, xp: Any) -> None:
    if not is_real_floating(x, xp):
        raise TypeError(f"{name} must have a real floating dtype, got {x.dtype}")


INT64_MAX = 2**63 - 1


def _check_floating_leaves(xs: list, name: str, treedef: _tree.TreeDef, xp: Any) -> None:
    for i, x in enumerate(xs):
        if not is_real_floating(x, xp):
            _check_floating(treedef.leaf_names(name)[i], x, xp)


def _check_step(step: Any, name: str = "state.step", *, limit: int = INT64_MAX) -> int:
    """``step`` as a Python int in [0, limit]: int64 semantics; bool, float and arrays rejected."""
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f"{name} must be an int (Python int or NumPy integer), got {type(step).__name__}: {step!r:.80}")
    step = int(step)
    if step < 0:
        raise ValueError(f"{name} must be >= 0, got {step!r}")
    if step > limit:
        raise ValueError(f"{name} must be <= {limit} (int64 counter), got {step!r}")
    return step


def _check_leaves(xs: list, name: str, ref: list, treedef: _tree.TreeDef, *, dtypes: list | None = None) -> None:
    """Each ``xs[i]`` must have the shape of ``ref[i]`` (the params) and the dtype ``dtypes[i]``
    (default ``ref[i].dtype``); the error names ``name[i]`` and ``params[i]``."""
    for i, (x, r) in enumerate(zip(xs, ref)):
        expected = r.dtype if dtypes is None else dtypes[i]
        if x.shape != r.shape and tuple(x.shape) != tuple(r.shape):
            label, ref_label = treedef.leaf_names(name)[i], treedef.leaf_names("params")[i]
            raise ValueError(f"{label} has shape {tuple(x.shape)}, expected {tuple(r.shape)} as {ref_label}")
        if x.dtype != expected:
            label, ref_label = treedef.leaf_names(name)[i], treedef.leaf_names("params")[i]
            as_params = f" as {ref_label}" if dtypes is None else ""
            raise TypeError(f"{label} has dtype {x.dtype}, expected {expected}{as_params}")


def _check_devices(xs: list, name: str, ref: list, treedef: _tree.TreeDef) -> None:
    """Each ``xs[i]`` must be on the device of ``ref[i]`` (the params); the error names both."""
    for i, (x, r) in enumerate(zip(xs, ref)):
        dx, dr = device_of(x), device_of(r)
        if dx != dr:
            label, ref_label = treedef.leaf_names(name)[i], treedef.leaf_names("params")[i]
            raise ValueError(f"{label} is on device {dx!r}, but {ref_label} is on device {dr!r}; "
                             "move them to the same device")


def _namespace(p: list, flat: dict, treedef: _tree.TreeDef) -> Any:
    """The one namespace of all leaves; on any doubt, the detailed checks that name the culprit."""
    t = type(p[0])
    if _is_array(p[0]) and all(type(x) is t for x in p) and all(type(x) is t for xs in flat.values() for x in xs):
        return array_namespace(p[0], name="params")  # the common case: one array type throughout
    for name, xs in {"params": p, **flat}.items():
        for label, x in zip(treedef.leaf_names(name), xs):
            if not _is_array(x):
                raise TypeError(f"{label} must be an array, got {type(x).__name__}: {x!r:.80}")
    array_namespace(*p, name="params")
    ref = backend_name(p[0])
    for name, xs in flat.items():  # each container's own library first, so the message names it
        array_namespace(*xs, name=name)
        if backend_name(xs[0]) != ref:
            raise TypeError(f"{name} holds {backend_name(xs[0])} arrays but params holds {ref} arrays; "
                            "pass arrays of a single library")
    return array_namespace(*p, *(x for xs in flat.values() for x in xs), name="params, grads and state")
