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

One leaf update is assembled from small named pieces, each chosen by the config:
gradient preprocessing (``_preprocess``: ``maximize``, L2 or decoupled weight decay),
first moment (``_first_moment``), second-moment rule (``_second_moment``: EMA of
:math:`g^2`, AdaMax's infinity norm, Yogi's additive rule), AMSGrad's running maximum
(:func:`adam_np.core.variants.amsgrad_max`), numerator (``_numerator``: :math:`\hat v`, or NAdam's
Nesterov combination), denominator with the ε placement (``_denominator``), the per-step
scalars with RAdam's rectification (``_step_scalars``) and the final ``_apply``. The variant
rules live in :mod:`adam_np.core.variants` and are chosen by :class:`AdamConfig` fields
(``variant``, ``weight_decay_mode``...); for a plain config (:attr:`AdamConfig.is_plain_adam`)
the path performs exactly the operations of Algorithm 1 it always did.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

from . import _tree
from . import variants as _rules
from ._xp import array_namespace, backend_name, device_of, is_numpy_array, is_real_floating

__all__ = [
    "EPS_MODES",
    "NONFINITE_POLICIES",
    "VARIANTS",
    "WEIGHT_DECAY_MODES",
    "AdamConfig",
    "AdamState",
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

VARIANTS = ("adam", "amsgrad", "adamax", "nadam", "radam", "yogi")
"""The update rules on the shared core (AdamW is ``weight_decay_mode="decoupled"`` on any of them)."""

WEIGHT_DECAY_MODES = ("l2", "decoupled", "decoupled_add")
"""``"l2"``: :math:`g \\leftarrow g + \\lambda x` (torch ``Adam``); ``"decoupled"``:
:math:`x \\leftarrow (1 - \\eta\\lambda) x` before the moments (torch ``AdamW``, Loshchilov & Hutter);
``"decoupled_add"``: :math:`x \\leftarrow x - \\eta(u + \\lambda x)`, :math:`u` the Adam direction (optax)."""

AMSGRAD_MAXES = ("raw", "corrected")
"""AMSGrad: maximum over the raw :math:`s` then bias-correct (torch, Keras), or over :math:`\\hat s` (optax)."""

NADAM_SCHEDULES = ("decay", "constant")
"""NAdam's momentum: :math:`\\mu_t = \\beta_1(1 - \\tfrac12 0.96^{t\\psi})` (torch, Keras), or
:math:`\\mu_t = \\beta_1` (optax ``nesterov=True``)."""

MU_PRODUCT_DTYPES = ("float64", "float32")
"""Precision of NAdam's running product :math:`\\prod_i \\mu_i` (torch keeps a float32 tensor)."""

# Options that only some variants use, with their defaults: setting one for another variant is an error.
_VARIANT_OPTIONS = {
    "amsgrad_max": (("amsgrad",), "raw"),
    "nadam_schedule": (("nadam",), "decay"),
    "momentum_decay": (("nadam",), 4e-3),
    "mu_product_dtype": (("nadam",), "float64"),
    "radam_threshold": (("radam",), 5.0),
    "fold_bias_correction": (("adam",), False),
}

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
    variant : {"adam", "amsgrad", "adamax", "nadam", "radam", "yogi"}, default "adam"
        The update rule (see :mod:`adam_np.core.variants` for each one's math and constructor).
    weight_decay_mode : {"l2", "decoupled", "decoupled_add"}, default "l2"
        ``"l2"``: :math:`g \leftarrow g + \lambda x`; ``"decoupled"`` (AdamW):
        :math:`x \leftarrow (1 - \eta_t\lambda)\,x` before the moments, as torch ``AdamW`` does;
        ``"decoupled_add"``: :math:`x \leftarrow x - \eta_t(u + \lambda x)` with :math:`u` the Adam
        direction, as optax ``adamw`` does (equal in exact arithmetic, not in float32).
    eps_root : float, default 0.0
        :math:`\epsilon_{root} \ge 0` added under the square root, on top of ``eps`` (optax ``eps_root``):
        :math:`\hat v/(\sqrt{\hat s + \epsilon_{root}} + \epsilon)`.
    amsgrad_max : {"raw", "corrected"}, default "raw"
        AMSGrad only: maximum over the raw :math:`s` then divide by :math:`1-\beta_2^t` (torch, Keras), or
        maximum over the corrected :math:`\hat s` (optax).
    nadam_schedule : {"decay", "constant"}, default "decay"
        NAdam only: :math:`\mu_t = \beta_1(1 - \tfrac12\,0.96^{t\psi})` (torch, Keras with
        :math:`\psi = 1`) or :math:`\mu_t = \beta_1` (optax).
    momentum_decay : float, default 4e-3
        NAdam only: :math:`\psi \ge 0` of the ``"decay"`` schedule (torch default 4e-3).
    mu_product_dtype : {"float64", "float32"}, default "float64"
        NAdam only: precision of the running product :math:`\prod_{i\le t}\mu_i` (torch: float32).
    radam_threshold : float, default 5.0
        RAdam only: rectify when :math:`\rho_t >` this (≥ 4), else take the SGD-with-momentum step.
    initial_accumulator : float, default 0.0
        Value :math:`\ge 0` both moments start at in :func:`init` (optax ``yogi``: 1e-6).
    fold_bias_correction : bool, default False
        Plain Adam only: fold the bias corrections into two per-step scalars, the paper's "more
        efficient order" (§2), with ε rescaled so that it stays exactly where ``eps_mode`` puts it:
        :math:`x \mathrel{-}= \alpha_t v/(\sqrt{s} + \epsilon\sqrt{1-\beta_2^t})` (``"outside"``) or
        :math:`\alpha_t v/\sqrt{s + \epsilon(1-\beta_2^t)}` (``"root"``), :math:`\alpha_t` as for ``"hat"``.
        The same update in exact arithmetic, one division and one square root per element instead
        of three divisions; it differs from the default by rounding only (a few ulp of the step, see
        :mod:`adam_np.verify.oracle`). ``"hat"`` is folded by definition.

    Raises
    ------
    TypeError, ValueError
        Naming the field and the value when a hyper-parameter is out of range.

    Examples
    --------
    >>> AdamConfig(lr=0.01, eps=1e-6)  # doctest: +ELLIPSIS
    AdamConfig(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-06, eps_mode='outside', weight_decay=0.0, maximize=False, ...)
    >>> AdamConfig().is_plain_adam, AdamConfig(variant="amsgrad").is_plain_adam
    (True, False)
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
    variant: str = "adam"
    weight_decay_mode: str = "l2"
    eps_root: float = 0.0
    amsgrad_max: str = "raw"
    nadam_schedule: str = "decay"
    momentum_decay: float = 4e-3
    mu_product_dtype: str = "float64"
    radam_threshold: float = 5.0
    initial_accumulator: float = 0.0
    fold_bias_correction: bool = False

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
        if not isinstance(self.fold_bias_correction, bool):
            raise TypeError(f"fold_bias_correction must be a bool, got {type(self.fold_bias_correction).__name__}: "
                            f"{self.fold_bias_correction!r}")
        self._check_variant()

    def _check_variant(self) -> None:
        """Validate the variant fields (called by ``__post_init__``)."""
        set_ = object.__setattr__
        for name, allowed in (("variant", VARIANTS), ("weight_decay_mode", WEIGHT_DECAY_MODES),
                              ("amsgrad_max", AMSGRAD_MAXES), ("nadam_schedule", NADAM_SCHEDULES),
                              ("mu_product_dtype", MU_PRODUCT_DTYPES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("eps_root", "momentum_decay", "initial_accumulator"):
            value = _real(name, getattr(self, name))
            if not value >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
            set_(self, name, value)
        threshold = _real("radam_threshold", self.radam_threshold)
        if not threshold >= 4.0:
            raise ValueError(f"radam_threshold must be >= 4 (the rectification needs rho_t > 4), got {threshold!r}")
        set_(self, "radam_threshold", threshold)
        for name, (users, default) in _VARIANT_OPTIONS.items():
            if self.variant not in users and getattr(self, name) != default:
                raise ValueError(f"{name}={getattr(self, name)!r} applies only to variant {' or '.join(users)}, "
                                 f"not variant={self.variant!r}")
        if self.variant == "adamax" and (self.eps_mode == "hat" or self.eps_root):
            what = "eps_mode='hat'" if self.eps_mode == "hat" else f"eps_root={self.eps_root!r}"
            raise ValueError(f"{what} is not defined for variant='adamax' (it has no square root): use "
                             "eps_mode='root' (eps inside the max, torch/optax) or 'outside' (u + eps, Keras)")
        if self.variant == "adamax" and self.eps == 0.0:
            raise ValueError("eps must be > 0 for variant='adamax', got 0.0: u stays 0 until a nonzero gradient "
                             "arrives, and v/u would be 0/0")
        if self.eps_root and self.eps_mode == "hat":
            raise ValueError(f"eps_root={self.eps_root!r} cannot be combined with eps_mode='hat' (which works on the "
                             "raw s, so eps_root would not sit under s_hat); use eps_mode='outside' with eps_root")
        if self.variant == "nadam" and self.nadam_schedule == "constant":
            for name in ("momentum_decay", "mu_product_dtype"):
                default = _VARIANT_OPTIONS[name][1]
                if getattr(self, name) != default:
                    raise ValueError(f"{name}={getattr(self, name)!r} has no effect with nadam_schedule='constant' "
                                     f"(mu_t = beta1); leave it at its default {default!r} or use "
                                     "nadam_schedule='decay'")
        if self.fold_bias_correction and (self.eps_mode == "hat" or self.eps_root):
            what = "eps_mode='hat' (folded by definition)" if self.eps_mode == "hat" else f"eps_root={self.eps_root!r}"
            raise ValueError(f"fold_bias_correction=True cannot be combined with {what}; use eps_mode='outside' "
                             "or 'root'")
        if self.variant == "amsgrad" and self.amsgrad_max == "corrected" and self.eps_mode == "hat":
            raise ValueError("eps_mode='hat' needs the raw second moment, so it cannot be combined with "
                             "amsgrad_max='corrected'; use amsgrad_max='raw'")

    @property
    def is_plain_adam(self) -> bool:
        """Whether this is Algorithm 1 itself (with optional ``maximize`` and L2 ``weight_decay``).

        The in-place kernels implement exactly this case; every variant goes through :func:`update`.

        Returns
        -------
        bool

        Examples
        --------
        >>> AdamConfig(weight_decay=0.1, eps_mode="hat").is_plain_adam
        True
        >>> AdamConfig(weight_decay=0.1, weight_decay_mode="decoupled").is_plain_adam
        False
        """
        return self.variant == "adam" and (self.weight_decay_mode == "l2" or not self.weight_decay) \
            and self.eps_root == 0.0

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
        TypeError
            If the schedule cannot be called as ``lr(step)`` or returns a non-number.
        ValueError
            If a schedule returns a value that is not a finite number > 0.

        Examples
        --------
        >>> AdamConfig(lr=lambda t: 0.1 / t).lr_at(4)
        0.025
        """
        if callable(self.lr):
            try:
                value = self.lr(step)
            except TypeError as exc:
                raise TypeError(f"lr schedule must be callable as lr(t) with the step t (an int >= 1), "
                                f"got {self.lr!r}: {exc}") from exc
            return _check_lr(value, name=f"lr({step})")
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
    r"""State of Adam: the step counter and the two moments, shaped like the parameters.

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
    s_max : array or container of arrays, optional
        AMSGrad's running maximum of the second moment (raw :math:`s` or :math:`\hat s`, as
        ``config.amsgrad_max`` says); None for the other variants (AMSGrad then starts from zeros).
    mu_product : float, default 1.0
        NAdam's running product :math:`\prod_{i \le t} \mu_i` (``"decay"`` schedule); 1.0 otherwise.
    """

    step: int
    v: Any
    s: Any
    skipped: int = 0
    master: Any = None
    s_max: Any = None
    mu_product: float = 1.0


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

    :math:`1-\beta^t` is evaluated as :math:`-\operatorname{expm1}(t \log\beta)`: the textbook
    ``1 - beta**t`` (torch's) cancels when :math:`\beta^t` is near 1 and is then off by up to
    many ulp (t = 2, β2 = 0.999: 1.4e-14 relative, ~60 ulp; millions of ulp for β within 1e-9 of 1);
    this form stays within about 1 ulp.
    At t = 1 and for β < 1/2 (no cancellation) ``1 - beta**t`` is used as is.

    Examples
    --------
    >>> bias_corrections(0.9, 0.999, 1)
    (0.09999999999999998, 0.0010000000000000009)
    >>> bias_corrections(0.9, 0.999, 2)[1], 1.0 - 0.999**2       # exact: 0.00199900000000000177...
    (0.0019990000000000016, 0.001998999999999973)
    """
    # Inline (no helper call: this runs once per step of the in-place fast path). β^t ≤ 1/2 (β < 1/2)
    # does not cancel, and at t = 1 the subtraction 1 - β is exact for β ≥ 1/2; β - 1 is exact too.
    if step == 1:
        return 1.0 - beta1, 1.0 - beta2
    return (1.0 - beta1**step if beta1 < 0.5 else -math.expm1(step * math.log1p(beta1 - 1.0)),
            1.0 - beta2**step if beta2 < 0.5 else -math.expm1(step * math.log1p(beta2 - 1.0)))


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, (list, tuple, dict))


def _flatten(tree: Any, name: str):
    return _tree.flatten(tree, is_leaf=_is_array, name=name)


def init(params: Any, config: AdamConfig | None = None, *, moment_dtype: Any = None,
         master: bool | None = None) -> AdamState:
    r"""Initial state for ``params``: step 0 and zero moments of the same shape.

    Parameters
    ----------
    params : array or list/tuple/dict of arrays
        The parameters (any array-API library, real floating dtype).
    config : AdamConfig, optional
        The variant's needs: both moments start at ``config.initial_accumulator`` (Yogi in optax:
        1e-6) and AMSGrad gets a zero ``s_max``. Plain zero moments if omitted.
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
    >>> init(np.ones(2), AdamConfig(variant="yogi", initial_accumulator=1e-6)).s
    array([1.e-06, 1.e-06])
    """
    if config is not None and not isinstance(config, AdamConfig):
        raise TypeError(f"config must be an AdamConfig, got {type(config).__name__}")
    leaves, treedef = _flatten(params, "params")
    names = treedef.leaf_names("params")
    xp = array_namespace(*leaves, name="params")
    for name, x in zip(names, leaves):
        _check_floating(name, x, xp)
    if master is not None and not isinstance(master, bool):
        raise TypeError(f"master must be None or a bool, got {type(master).__name__}: {master!r}")
    mdtypes = [_moment_dtype(x, moment_dtype, xp) for x in leaves]
    fill = 0.0 if config is None else config.initial_accumulator

    def moments():
        return [xp.full(x.shape, fill, dtype=dt, device=device_of(x)) for x, dt in zip(leaves, mdtypes)]

    cdtypes = [xp.result_type(x.dtype, dt) for x, dt in zip(leaves, mdtypes)]
    if master is None:
        master = any(c != x.dtype for x, c in zip(leaves, cdtypes))
    copies = [xp.astype(x, c, copy=True) for x, c in zip(leaves, cdtypes)] if master else None
    unflatten = treedef.unflatten
    s_max = None
    if config is not None and config.variant == "amsgrad":
        s_max = unflatten([xp.zeros(x.shape, dtype=dt, device=device_of(x)) for x, dt in zip(leaves, mdtypes)])
    return AdamState(0, unflatten(moments()), unflatten(moments()), 0,
                     master=None if copies is None else unflatten(copies), s_max=s_max)


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
    s_max: list | None = None


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
    xp = _namespace(p, flat, treedef)
    if not is_numpy_array(p[0]):  # NumPy arrays (one library throughout, checked above) all live on the CPU
        for name, xs in flat.items():
            _check_devices(xs, name, p, treedef)
    _check_floating_leaves(p, "params", treedef, xp)
    _check_leaves(flat["grads"], "grads", p, treedef)
    _check_floating_leaves(flat["state.v"], "state.v", treedef, xp)
    moment_dtypes = [v.dtype for v in flat["state.v"]]  # any real floating dtype (mixed precision)
    _check_leaves(flat["state.v"], "state.v", p, treedef, dtypes=moment_dtypes)
    _check_leaves(flat["state.s"], "state.s", p, treedef, dtypes=moment_dtypes)
    if state.master is not None:
        compute = [xp.result_type(x.dtype, dt) for x, dt in zip(p, moment_dtypes)]
        _check_leaves(flat["state.master"], "state.master", p, treedef, dtypes=compute)
    step = _check_step(state.step, limit=INT64_MAX - 1)
    _check_step(state.skipped, "state.skipped", limit=INT64_MAX - 1)
    s_max = _validate_variant_state(state, config, treedef, p, moment_dtypes)
    return _Leaves(xp, treedef, p, flat["grads"], flat["state.v"], flat["state.s"], step,
                   flat.get("state.master"), s_max)


def _validate_variant_state(state: AdamState, config: AdamConfig, treedef: Any, p: list, moment_dtypes: list):
    """Check ``state.mu_product`` and, for AMSGrad, ``state.s_max``; return the flat ``s_max`` or None."""
    mu_product = _real("state.mu_product", state.mu_product)
    if not 0.0 <= mu_product <= 1.0:
        raise ValueError(f"state.mu_product must be in [0, 1], got {mu_product!r}")
    if config.variant != "amsgrad" or state.s_max is None:
        return None
    s_max = _tree.flatten_like(state.s_max, treedef, is_leaf=_is_array, name="state.s_max")
    array_namespace(*p, *s_max, name="params and state.s_max")
    if not is_numpy_array(p[0]):
        _check_devices(s_max, "state.s_max", p, treedef)
    _check_leaves(s_max, "state.s_max", p, treedef, dtypes=moment_dtypes)
    return s_max


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


class _Scalars(NamedTuple):
    """Per-step Python-float coefficients, computed once per :func:`update` (never per element)."""

    lr: float
    bc1: float
    bc2: float
    step_size: float  # what multiplies numerator/denominator
    nadam_g: float = 0.0  # NAdam: v_hat = nadam_v * v + nadam_g * g
    nadam_v: float = 0.0
    mu_product: float = 1.0  # NAdam's new running product
    rectified: bool = True  # RAdam: False in the SGD-with-momentum phase (rho_t <= threshold)
    eps: float | None = None  # the step's epsilon where fold_bias_correction rescales it (None: config.eps)


def _step_scalars(config: AdamConfig, lr: float, step: int, mu_product: float) -> _Scalars:
    r"""Step size and coefficients of step ``step``: bias corrections, ``eps_hat``'s :math:`\alpha_t`,
    NAdam's :math:`\mu` schedule, RAdam's rectification :math:`r_t`."""
    bc1, bc2 = bias_corrections(config.beta1, config.beta2, step)
    variant = config.variant
    if variant == "nadam":
        mu_product, c_g, c_v = _rules.nadam_coefficients(config, step, mu_product)
        step_size = lr * math.sqrt(bc2) if config.eps_mode == "hat" else lr
        return _Scalars(lr, bc1, bc2, step_size, c_g, c_v, mu_product)
    rect = 1.0
    if variant == "radam":
        rect = _rules.radam_rectification(config.beta2, step, config.radam_threshold)
        if rect is None:
            return _Scalars(lr, bc1, bc2, lr, rectified=False)
    if config.fold_bias_correction:
        return _Scalars(lr, bc1, bc2, _folded_step_size(lr, bc1, bc2), eps=_folded_eps(config, bc2))
    if config.eps_mode == "hat":
        step_size = _folded_step_size(lr, bc1, bc2)
    else:
        step_size = lr
    if variant == "radam":
        step_size = step_size * rect
    return _Scalars(lr, bc1, bc2, step_size)


def _folded_step_size(lr: float, bc1: float, bc2: float) -> float:
    r""":math:`\alpha_t = \eta_t\sqrt{1-\beta_2^t}/(1-\beta_1^t)`, the step size of ``eps_mode="hat"`` and
    ``fold_bias_correction`` (one Python-float expression shared with the kernels)."""
    return lr * math.sqrt(bc2) / bc1


def _folded_eps(config: AdamConfig, bc2: float) -> float:
    r"""The ε of a step with ``fold_bias_correction``: :math:`\epsilon\sqrt{1-\beta_2^t}` (``"outside"``) or
    :math:`\epsilon(1-\beta_2^t)` (``"root"``), so that :math:`\alpha_t v/(\sqrt{s}+\epsilon_t)` equals
    :math:`\eta\hat v/(\sqrt{\hat s}+\epsilon)` exactly (and likewise under the root); ``config.eps`` otherwise."""
    if not config.fold_bias_correction:
        return config.eps
    return config.eps * (bc2 if config.eps_mode == "root" else math.sqrt(bc2))


def _preprocess(x: Any, g: Any, config: AdamConfig, lr: float) -> tuple[Any, Any]:
    r"""``maximize`` (:math:`g \leftarrow -g`), then weight decay: L2 (:math:`g \leftarrow g + \lambda x`) or
    decoupled (:math:`x \leftarrow (1 - \eta_t\lambda)x`, torch ``AdamW``). Returns ``(x, g)``."""
    if config.maximize:
        g = -g
    if config.weight_decay:
        if config.weight_decay_mode == "decoupled":
            x = x * (1.0 - lr * config.weight_decay)
        elif config.weight_decay_mode == "l2":
            g = g + config.weight_decay * x
    return x, g  # "decoupled_add" acts in _apply


def _first_moment(v: Any, g: Any, beta1: float) -> Any:
    r""":math:`v_t = \beta_1 v_{t-1} + (1-\beta_1) g_t`."""
    return beta1 * v + (1.0 - beta1) * g


def _second_moment(s: Any, g: Any, config: AdamConfig, *, xp: Any) -> Any:
    r"""The second-moment rule: :math:`s_t = \beta_2 s_{t-1} + (1-\beta_2) g_t^2` (Adam), AdaMax's
    infinity norm or Yogi's additive rule (:mod:`adam_np.core.variants`)."""
    if config.variant == "adamax":
        return _rules.adamax_norm(s, g, config.beta2, config.eps if config.eps_mode == "root" else 0.0, xp=xp)
    if config.variant == "yogi":
        return _rules.yogi_second_moment(s, g, config.beta2, xp=xp)
    beta2 = config.beta2
    return beta2 * s + (1.0 - beta2) * (g * g)


def _numerator(v: Any, g: Any, config: AdamConfig, c: _Scalars) -> Any:
    r"""What the step divides: :math:`\hat v = v/(1-\beta_1^t)`, raw :math:`v` for ``eps_hat`` (the
    correction is in the step size), or NAdam's :math:`\mu_{t+1}`-weighted Nesterov combination."""
    if config.variant == "nadam":
        return c.nadam_v * v + c.nadam_g * g
    if config.eps_mode == "hat" or config.fold_bias_correction:
        return v
    return v / c.bc1


def _denominator(s: Any, config: AdamConfig, c: _Scalars, *, corrected: bool, xp: Any) -> Any:
    r"""The ε placement: :math:`\sqrt{\hat s} + \epsilon` (``outside``), :math:`\sqrt{\hat s + \epsilon}`
    (``root``) or :math:`\sqrt{s} + \hat\epsilon` (``hat``); ``eps_root`` under the root; AdaMax's
    :math:`u` (+ ε for ``outside``). ``corrected`` says ``s`` is already :math:`\hat s` (optax AMSGrad).
    With ``fold_bias_correction`` the raw :math:`s` and the step's rescaled ε (:func:`_folded_eps`)."""
    eps = config.eps if c.eps is None else c.eps
    if config.variant == "adamax":
        return s + eps if config.eps_mode == "outside" else s
    if config.eps_mode == "hat" or config.fold_bias_correction:
        s_hat = s
    else:
        s_hat = s if corrected else s / c.bc2
    if config.eps_root:
        s_hat = s_hat + config.eps_root
    if config.eps_mode == "root":
        return xp.sqrt(s_hat + eps)
    return xp.sqrt(s_hat) + eps


def _leaf_update(x: Any, g: Any, v: Any, s: Any, s_max: Any, config: AdamConfig, c: _Scalars, *, xp: Any):
    """One step on one array, assembled from the pieces above; returns new ``(x, v, s, s_max)``."""
    x, g = _preprocess(x, g, config, c.lr)
    v = _first_moment(v, g, config.beta1)
    s = _second_moment(s, g, config, xp=xp)
    if not c.rectified:  # RAdam while rho_t <= threshold: SGD with momentum on the bias-corrected v
        return _apply(x, v / c.bc1, None, config, c), v, s, s_max
    s_eff, corrected = s, False
    if config.variant == "amsgrad":
        s_max, s_eff = _rules.amsgrad_max(s, s_max, c.bc2, config.amsgrad_max, xp=xp)
        corrected = config.amsgrad_max == "corrected"
    den = _denominator(s_eff, config, c, corrected=corrected, xp=xp)
    return _apply(x, _numerator(v, g, config, c), den, config, c), v, s, s_max


def _apply(x: Any, num: Any, den: Any, config: AdamConfig, c: _Scalars) -> Any:
    r""":math:`x - \text{step} \cdot \text{num}/\text{den}` (``den`` None: RAdam's un-rectified
    :math:`x - \eta\hat v`); with ``decoupled_add`` weight decay optax's :math:`x - \eta(u + \lambda x)`."""
    if config.weight_decay and config.weight_decay_mode == "decoupled_add":
        u = num if den is None else (num / den if c.step_size == c.lr else (c.step_size / c.lr) * num / den)
        return x - c.lr * (u + config.weight_decay * x)
    if den is None:
        return x - c.lr * num
    return x - c.step_size * num / den


def _adam_leaf(x: Any, g: Any, v: Any, s: Any, config: AdamConfig, lr: float, step: int, *, xp: Any):
    """One step of ``config``'s rule on one array without AMSGrad/NAdam state; returns new ``(x, v, s)``.

    For a plain config (:attr:`AdamConfig.is_plain_adam`) these are exactly the operations of
    Algorithm 1, in this order: ``v = b1*v + (1-b1)*g``, ``s = b2*s + (1-b2)*(g*g)``, then
    ``x - lr*(v/bc1)/(sqrt(s/bc2) + eps)`` (or ``x - alpha*v/(sqrt(s) + eps)`` for ``eps_hat``, and
    ``x - alpha*v/(sqrt(s) + eps_t)`` with ``fold_bias_correction``).
    """
    c = _step_scalars(config, lr, step, 1.0)
    x, v, s, _ = _leaf_update(x, g, v, s, None, config, c, xp=xp)
    return x, v, s


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
    if config.nonfinite != "propagate" and not all_finite(leaves.grads, xp=xp):
        if config.nonfinite == "raise":
            raise FloatingPointError(
                f"grads contain NaN or inf at step {t}; nothing was updated "
                "(use nonfinite='skip' to skip such steps or 'propagate' to apply them)"
            )
        return params, state._replace(step=leaves.step, skipped=int(state.skipped) + 1)
    lr = config.lr_at(t)  # only for a step actually taken; still before anything is computed
    c = _step_scalars(config, lr, t, state.mu_product)
    n = len(leaves.params)
    masters = leaves.master if leaves.master is not None else [None] * n
    s_maxes = leaves.s_max
    if config.variant == "amsgrad" and s_maxes is None:
        s_maxes = [xp.zeros_like(s) for s in leaves.s]
    elif s_maxes is None:
        s_maxes = [None] * n
    new_p, new_v, new_s, new_m, new_smax = [], [], [], [], []
    for x, g, v, s, m, s_max in zip(leaves.params, leaves.grads, leaves.v, leaves.s, masters, s_maxes):
        # Mixed precision: compute in the wider of the parameter and moment dtypes, on the
        # master copy when there is one; without casts this is exactly _leaf_update.
        dt = xp.result_type(x.dtype, v.dtype)
        x_c = m if m is not None else _cast(x, dt, xp)
        s_max_c = None if s_max is None else _cast(s_max, dt, xp)
        x_c, v_c, s_c, s_max_c = _leaf_update(
            x_c, _cast(g, dt, xp), _cast(v, dt, xp), _cast(s, dt, xp), s_max_c, config, c, xp=xp
        )
        new_p.append(_cast(x_c, x.dtype, xp))
        new_v.append(_cast(v_c, v.dtype, xp))
        new_s.append(_cast(s_c, s.dtype, xp))
        new_m.append(_cast(x_c, x_c.dtype, xp))
        new_smax.append(None if s_max_c is None else _cast(s_max_c, v.dtype, xp))
    unflatten = leaves.treedef.unflatten
    return unflatten(new_p), AdamState(
        t, unflatten(new_v), unflatten(new_s), int(state.skipped),
        master=None if leaves.master is None else unflatten(new_m),
        s_max=unflatten(new_smax) if config.variant == "amsgrad" else state.s_max,
        mu_product=c.mu_product,
    )


def _cast(x: Any, dtype: Any, xp: Any) -> Any:
    """``x`` as an array of ``dtype``; NumPy's 0-d arithmetic returns scalars, made 0-d arrays again."""
    if x.ndim == 0:
        x = xp.asarray(x)
    return x if x.dtype == dtype else xp.astype(x, dtype)
