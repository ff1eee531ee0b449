r"""The Adam algorithm as pure functions on any array-API namespace ``xp``.

Kingma & Ba (2014), Algorithm 1, in the notation of D2L section 7.8. For a gradient
:math:`g_t` at step :math:`t = 1, 2, \dots`:

.. math::

    v_t &= \beta_1 v_{t-1} + (1 - \beta_1) g_t \\
    s_t &= \beta_2 s_{t-1} + (1 - \beta_2) g_t \odot g_t \\
    \hat v_t &= v_t / (1 - \beta_1^t), \qquad \hat s_t = s_t / (1 - \beta_2^t) \\
    x_t &= x_{t-1} - \eta \, \hat v_t / (\sqrt{\hat s_t} + \epsilon)

:func:`init` makes the state, :func:`update` returns new parameters and a new state and
never mutates its inputs (so it also works for immutable arrays). The stateful,
in-place :class:`adam_np.Adam` is built on the same functions.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

from . import _tree
from ._xp import array_namespace, backend_name, is_real_floating

__all__ = [
    "AdamConfig",
    "AdamState",
    "EPS_MODES",
    "NONFINITE_POLICIES",
    "all_finite",
    "bias_corrections",
    "init",
    "update",
]

EPS_MODES = ("outside", "root", "hat")
"""Where ε enters the update: ``"outside"`` (book, torch), ``"root"`` (optax ``eps_root``),
``"hat"`` (paper end of §2, Keras, Chainer)."""

NONFINITE_POLICIES = ("raise", "skip", "propagate")
"""What a non-finite gradient does: raise an error, skip the whole step, or propagate (torch)."""

LearningRate = float | Callable[[int], float]


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


@dataclass(frozen=True)
class AdamConfig:
    r"""Hyper-parameters of Adam, validated on construction.

    Parameters
    ----------
    lr : float or callable, default 1e-3
        Learning rate :math:`\eta > 0`, or a schedule ``lr(t) -> float`` of the step
        :math:`t \ge 1` (checked when called).
    beta1 : float, default 0.9
        Decay of the first moment :math:`v`, :math:`0 \le \beta_1 < 1`.
    beta2 : float, default 0.999
        Decay of the second moment :math:`s`, :math:`0 \le \beta_2 < 1`.
    eps : float, default 1e-8
        :math:`\epsilon \ge 0`, placed as ``eps_mode`` says.
    eps_mode : {"outside", "root", "hat"}, default "outside"
        ``"outside"``: :math:`x \mathrel{-}= \eta \hat v/(\sqrt{\hat s} + \epsilon)` (book, torch, optax ``eps``);
        ``"root"``: :math:`x \mathrel{-}= \eta \hat v/\sqrt{\hat s + \epsilon}` (optax ``eps_root``);
        ``"hat"``: :math:`x \mathrel{-}= \alpha_t v/(\sqrt{s} + \hat\epsilon)` with
        :math:`\alpha_t = \eta\sqrt{1-\beta_2^t}/(1-\beta_1^t)` (paper §2, Keras, Chainer).
    weight_decay : float, default 0.0
        L2 penalty :math:`\lambda \ge 0`: :math:`g \leftarrow g + \lambda x` before the moments (torch ``Adam``).
    maximize : bool, default False
        Ascend instead of descend: :math:`g \leftarrow -g` first (torch ``maximize``).
    nonfinite : {"raise", "skip", "propagate"}, default "raise"
        A gradient holding NaN or ±inf: raise :class:`FloatingPointError` and change nothing; skip
        the whole step (the step counter does not advance, ``state.skipped`` counts it); or
        compute with it as torch does.

    Raises
    ------
    TypeError, ValueError
        Naming the field and the value when a hyper-parameter is out of range.

    Examples
    --------
    >>> AdamConfig(lr=0.01, eps=1e-6)  # doctest: +NORMALIZE_WHITESPACE
    AdamConfig(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-06, eps_mode='outside',
               weight_decay=0.0, maximize=False, nonfinite='raise')
    >>> AdamConfig(beta1=1.0)
    Traceback (most recent call last):
    ...
    ValueError: beta1 must be in [0, 1), got 1.0
    """

    lr: LearningRate = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    eps_mode: str = "outside"
    weight_decay: float = 0.0
    maximize: bool = False
    nonfinite: str = "raise"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not callable(self.lr):
            set_(self, "lr", _check_lr(self.lr))
        for name in ("beta1", "beta2"):
            value = _real(name, getattr(self, name))
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
            set_(self, name, value)
        for name in ("eps", "weight_decay"):
            value = _real(name, getattr(self, name))
            if not value >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
            set_(self, name, value)
        if self.eps_mode not in EPS_MODES:
            raise ValueError(f"eps_mode must be one of {EPS_MODES}, got {self.eps_mode!r}")
        if not isinstance(self.maximize, bool):
            raise TypeError(f"maximize must be a bool, got {type(self.maximize).__name__}: {self.maximize!r}")
        if self.nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"nonfinite must be one of {NONFINITE_POLICIES}, got {self.nonfinite!r}")

    def lr_at(self, step: int) -> float:
        """The learning rate :math:`\\eta_t` for step ``step`` (t ≥ 1), schedules evaluated and checked.

        Parameters
        ----------
        step : int
            The step :math:`t` being taken (1 for the first update).

        Returns
        -------
        float

        Raises
        ------
        ValueError
            If a schedule returns a value that is not a finite number > 0.

        Examples
        --------
        >>> AdamConfig(lr=lambda t: 0.1 / t).lr_at(4)
        0.025
        """
        if callable(self.lr):
            return _check_lr(self.lr(step), name=f"lr({step})")
        return self.lr

    def to_dict(self) -> dict:
        """The fields as a plain dict (a schedule ``lr`` stays the callable).

        Returns
        -------
        dict

        Examples
        --------
        >>> AdamConfig().to_dict()["beta2"]
        0.999
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}


class AdamState(NamedTuple):
    """State of Adam: the step counter and the two moments, shaped like the parameters.

    Attributes
    ----------
    step : int
        Number of updates taken so far, :math:`t` (0 after :func:`init`). A Python int, never float.
    v : array or container of arrays
        First moment (moving average of gradients), structured like the parameters.
    s : array or container of arrays
        Second moment (moving average of squared gradients).
    skipped : int
        Steps skipped because of non-finite gradients (``nonfinite="skip"``).
    master : container of arrays or None
        Mixed precision: a copy of the parameters in the compute dtype (e.g. float32 for
        float16 parameters), updated instead of the rounded parameters; None when the
        parameters are their own master copy. See :func:`init`.
    """

    step: int
    v: Any
    s: Any
    skipped: int = 0
    master: Any = None


def bias_corrections(beta1: float, beta2: float, step: int) -> tuple[float, float]:
    r"""The bias-correction denominators :math:`(1-\beta_1^t,\ 1-\beta_2^t)` as Python floats.

    Parameters
    ----------
    beta1, beta2 : float
        Moment decays in [0, 1).
    step : int
        The step :math:`t \ge 1`.

    Returns
    -------
    tuple of float

    Notes
    -----
    Computed with Python floats (not arrays), so float32 arrays stay float32. The
    weights :math:`(1-\beta_1)\beta_1^{t-i}/(1-\beta_1^t)`, i = 1..t, that
    :math:`\hat v_t` puts on past gradients sum to 1.

    Examples
    --------
    >>> bias_corrections(0.9, 0.999, 1)
    (0.09999999999999998, 0.0010000000000000009)
    """
    return 1.0 - beta1**step, 1.0 - beta2**step


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, (list, tuple, dict))


def _flatten(tree: Any, name: str):
    return _tree.flatten(tree, is_leaf=_is_array, name=name)


def init(params: Any, *, moment_dtype: Any = None, master: bool | None = None) -> AdamState:
    r"""Initial state for ``params``: step 0 and zero moments of the same shape.

    Parameters
    ----------
    params : array or list/tuple/dict of arrays
        The parameters (any array-API library, real floating dtype).
    moment_dtype : dtype, optional
        Dtype of the moments :math:`v, s` (a real floating dtype of the parameters' library).
        Default: float32 for parameters narrower than 32 bits (float16, bfloat16), the
        parameter's own dtype otherwise.
    master : bool, optional
        Keep a master copy of the parameters in the compute dtype (the wider of parameter and
        moment dtype) in ``state.master``. Default: True exactly when some parameter is
        narrower than its compute dtype (mixed precision).

    Returns
    -------
    AdamState

    Raises
    ------
    TypeError
        If ``params`` holds non-arrays, arrays of several libraries, or integer arrays, or
        ``moment_dtype`` is not a real floating dtype of that library.

    Notes
    -----
    Mixed precision (float16/bfloat16 parameters) follows torch AMP and Chainer's
    ``use_fp32_update``: :func:`update` computes in float32 on the float32 master copy
    :math:`x^{32}` and hands back :math:`\operatorname{round}_{16}(x^{32}_t)`. Without a master
    copy (``master=False``) each step starts from the rounded parameter, so an update smaller
    than half a float16 ulp (about :math:`2^{-11}|x|`) is lost: with ``lr=1e-3`` a float16
    parameter :math:`|x| > 4` would never move.

    Examples
    --------
    >>> import numpy as np
    >>> state = init([np.ones(2), np.ones(1)])
    >>> state.step, state.v
    (0, [array([0., 0.]), array([0.])])
    >>> half = init(np.ones(2, dtype=np.float16))
    >>> half.v.dtype, half.master.dtype
    (dtype('float32'), dtype('float32'))
    """
    leaves, treedef = _flatten(params, "params")
    names = treedef.leaf_names("params")
    xp = array_namespace(*leaves, name="params")
    for name, x in zip(names, leaves):
        _check_floating(name, x, xp)
    if master is not None and not isinstance(master, bool):
        raise TypeError(f"master must be None or a bool, got {type(master).__name__}: {master!r}")
    mdtypes = [_moment_dtype(x, moment_dtype, xp) for x in leaves]
    v = [xp.zeros(x.shape, dtype=dt, device=_device(x)) for x, dt in zip(leaves, mdtypes)]
    s = [xp.zeros(x.shape, dtype=dt, device=_device(x)) for x, dt in zip(leaves, mdtypes)]
    cdtypes = [xp.result_type(x.dtype, dt) for x, dt in zip(leaves, mdtypes)]
    if master is None:
        master = any(c != x.dtype for x, c in zip(leaves, cdtypes))
    copies = [xp.astype(x, c, copy=True) for x, c in zip(leaves, cdtypes)] if master else None
    unflatten = treedef.unflatten
    return AdamState(0, unflatten(v), unflatten(s), 0, None if copies is None else unflatten(copies))


def _device(x: Any) -> Any:
    return getattr(x, "device", None)


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


def _check_leaves(xs: list, names: list[str], ref: list, ref_names: list[str], *, dtypes: list | None = None) -> None:
    """Each ``xs[i]`` must have the shape of ``ref[i]`` and the dtype ``dtypes[i]`` (default ``ref[i].dtype``)."""
    for i, (name, x, ref_name, r) in enumerate(zip(names, xs, ref_names, ref)):
        if tuple(x.shape) != tuple(r.shape):
            raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {tuple(r.shape)} as {ref_name}")
        if dtypes is None and x.dtype != r.dtype:
            raise TypeError(f"{name} has dtype {x.dtype}, expected {r.dtype} as {ref_name}")
        if dtypes is not None and x.dtype != dtypes[i]:
            raise TypeError(f"{name} has dtype {x.dtype}, expected {dtypes[i]}")


class _Leaves(NamedTuple):
    """Validated, flattened inputs of one update."""

    xp: Any
    treedef: _tree.TreeDef
    params: list
    grads: list
    v: list
    s: list
    step: int
    master: list | None = None


def _validate(grads: Any, state: Any, params: Any, config: Any) -> _Leaves:
    """Check everything an update needs, before anything is computed or mutated."""
    if not isinstance(config, AdamConfig):
        raise TypeError(f"config must be an AdamConfig, got {type(config).__name__}")
    if not isinstance(state, AdamState):
        raise TypeError(f"state must be an AdamState (from adam_np.init), got {type(state).__name__}")
    p, treedef = _flatten(params, "params")
    flat = {
        "grads": _tree.flatten_like(grads, treedef, is_leaf=_is_array, name="grads"),
        "state.v": _tree.flatten_like(state.v, treedef, is_leaf=_is_array, name="state.v"),
        "state.s": _tree.flatten_like(state.s, treedef, is_leaf=_is_array, name="state.s"),
    }
    if state.master is not None:
        flat["state.master"] = _tree.flatten_like(state.master, treedef, is_leaf=_is_array, name="state.master")
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
    xp = array_namespace(*p, *(x for xs in flat.values() for x in xs), name="params, grads and state")
    names = treedef.leaf_names("params")
    for name, x in zip(names, p):
        _check_floating(name, x, xp)
    _check_leaves(flat["grads"], treedef.leaf_names("grads"), p, names)
    v_names = treedef.leaf_names("state.v")
    for name, x in zip(v_names, flat["state.v"]):
        _check_floating(name, x, xp)
    moment_dtypes = [v.dtype for v in flat["state.v"]]  # any real floating dtype (mixed precision)
    _check_leaves(flat["state.v"], v_names, p, names, dtypes=moment_dtypes)
    _check_leaves(flat["state.s"], treedef.leaf_names("state.s"), p, names, dtypes=moment_dtypes)
    if state.master is not None:
        compute = [xp.result_type(x.dtype, dt) for x, dt in zip(p, moment_dtypes)]
        _check_leaves(flat["state.master"], treedef.leaf_names("state.master"), p, names, dtypes=compute)
    step = _check_step(state.step, limit=INT64_MAX - 1)
    _check_step(state.skipped, "state.skipped", limit=INT64_MAX - 1)
    return _Leaves(xp, treedef, p, flat["grads"], flat["state.v"], flat["state.s"], step, flat.get("state.master"))


def all_finite(arrays: list, *, xp: Any) -> bool:
    """Whether every element of every array is finite (no NaN, no ±inf).

    Parameters
    ----------
    arrays : list of array
        Arrays of namespace ``xp``.
    xp : namespace

    Returns
    -------
    bool

    Examples
    --------
    >>> import numpy as np, array_api_compat.numpy as xp
    >>> all_finite([np.ones(2), np.array([1.0, np.inf])], xp=xp)
    False
    """
    return all(bool(xp.all(xp.isfinite(g))) for g in arrays)


def _adam_leaf(x: Any, g: Any, v: Any, s: Any, config: AdamConfig, lr: float, step: int, *, xp: Any):
    """One Adam step on one array, as in Algorithm 1; returns new ``(x, v, s)``."""
    beta1, beta2, eps = config.beta1, config.beta2, config.eps
    if config.maximize:
        g = -g
    if config.weight_decay:
        g = g + config.weight_decay * x
    v = beta1 * v + (1.0 - beta1) * g
    s = beta2 * s + (1.0 - beta2) * (g * g)
    bc1, bc2 = bias_corrections(beta1, beta2, step)
    if config.eps_mode == "hat":
        alpha = lr * math.sqrt(bc2) / bc1
        return x - alpha * v / (xp.sqrt(s) + eps), v, s
    v_hat = v / bc1
    s_hat = s / bc2
    if config.eps_mode == "root":
        return x - lr * v_hat / xp.sqrt(s_hat + eps), v, s
    return x - lr * v_hat / (xp.sqrt(s_hat) + eps), v, s


def update(grads: Any, state: AdamState, params: Any, config: AdamConfig | None = None) -> tuple[Any, AdamState]:
    r"""One Adam step: new parameters and new state, inputs left untouched.

    Parameters
    ----------
    grads : array or list/tuple/dict of arrays
        Gradients :math:`g_t`, structured, shaped and typed like ``params``.
    state : AdamState
        From :func:`init` or a previous :func:`update`.
    params : array or list/tuple/dict of arrays
        Parameters :math:`x_{t-1}`: NumPy, CuPy, torch, ``array_api_strict``... (one library).
    config : AdamConfig, optional
        Hyper-parameters; ``AdamConfig()`` (torch's defaults) if omitted.

    Returns
    -------
    new_params : same structure as ``params``
        :math:`x_t = x_{t-1} - \eta\,\hat v_t/(\sqrt{\hat s_t} + \epsilon)` (or the ``eps_mode`` variant).
    new_state : AdamState
        ``step`` advanced by one, new moments :math:`v_t, s_t`.

    Raises
    ------
    TypeError, ValueError
        On mismatched structures, shapes, dtypes or libraries, integer arrays or a bad
        ``state.step``, naming the argument; nothing is computed.
    FloatingPointError
        On a non-finite gradient with ``config.nonfinite == "raise"``.

    Notes
    -----
    Hyper-parameters enter as Python floats, so float32 inputs give float32 outputs. The
    whole step is validated first; with ``nonfinite="skip"`` a non-finite gradient anywhere
    returns the inputs unchanged (``state.skipped`` + 1, ``state.step`` unchanged).

    Mixed precision: each array is computed in the wider of its parameter and moment dtypes
    (float32 for float16/bfloat16 parameters with the default moments of :func:`init`), on
    ``state.master`` when the state holds one; the new parameters are rounded back to their
    own dtype, the moments stored in theirs. With equal dtypes nothing is cast.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([1.0, -2.0])
    >>> state = init(x)
    >>> x1, state = update(np.array([0.5, -4.0]), state, x, AdamConfig(lr=0.1))
    >>> x1, state.step
    (array([ 0.9, -1.9]), 1)
    """
    config = AdamConfig() if config is None else config
    leaves = _validate(grads, state, params, config)
    xp, t = leaves.xp, leaves.step + 1
    lr = config.lr_at(t)
    if config.nonfinite != "propagate" and not all_finite(leaves.grads, xp=xp):
        if config.nonfinite == "raise":
            raise FloatingPointError(
                f"grads contain NaN or inf at step {t}; nothing was updated "
                "(use nonfinite='skip' to skip such steps or 'propagate' to apply them)"
            )
        return params, state._replace(step=leaves.step, skipped=int(state.skipped) + 1)
    masters = leaves.master if leaves.master is not None else [None] * len(leaves.params)
    new_p, new_v, new_s, new_m = [], [], [], []
    for x, g, v, s, m in zip(leaves.params, leaves.grads, leaves.v, leaves.s, masters):
        # Mixed precision: compute in the wider of the parameter and moment dtypes, on the
        # master copy when there is one; without casts this is exactly _adam_leaf.
        c = xp.result_type(x.dtype, v.dtype)
        x_c = m if m is not None else _cast(x, c, xp)
        x_c, v_c, s_c = _adam_leaf(x_c, _cast(g, c, xp), _cast(v, c, xp), _cast(s, c, xp), config, lr, t, xp=xp)
        new_p.append(_cast(x_c, x.dtype, xp))
        new_v.append(_cast(v_c, v.dtype, xp))
        new_s.append(_cast(s_c, s.dtype, xp))
        new_m.append(_cast(x_c, x_c.dtype, xp))
    unflatten = leaves.treedef.unflatten
    master = None if leaves.master is None else unflatten(new_m)
    return unflatten(new_p), AdamState(t, unflatten(new_v), unflatten(new_s), int(state.skipped), master)


def _cast(x: Any, dtype: Any, xp: Any) -> Any:
    """``x`` as an array of ``dtype``; NumPy's 0-d arithmetic returns scalars, made 0-d arrays again."""
    if x.ndim == 0:
        x = xp.asarray(x)
    return x if x.dtype == dtype else xp.astype(x, dtype)
