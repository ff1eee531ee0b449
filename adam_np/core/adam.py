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

:func:`adam_step` is exactly these four lines on one array, and :func:`update` runs it for a
textbook config. The variants and options (ε placement, weight decay, ``maximize``, AMSGrad, AdaMax,
NAdam, RAdam, Yogi: :mod:`adam_np.core.rules`) are assembled from small named pieces below it:
gradient preprocessing (``_preprocess``), the moments (``_first_moment``, ``_second_moment``),
AMSGrad's running maximum, the numerator and the denominator with the ε placement, the per-step
scalars (``_step_scalars``) and ``_apply``; for a plain config they perform the same operations
in the same order.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from . import _tree
from . import rules as _rules
from ._checks import (
    INT64_MAX,
    _check_devices,
    _check_floating,
    _check_floating_leaves,
    _check_leaves,
    _check_step,
    _flatten,
    _is_array,
    _moment_dtype,
    _namespace,
    _real,
)
from ._xp import array_namespace, device_of, is_lazy, is_numpy_array, like_chunks, persist_groups
from .config import EPS_MODES, NONFINITE_POLICIES, VARIANTS, WEIGHT_DECAY_MODES, AdamConfig

__all__ = [
    "EPS_MODES",
    "NONFINITE_POLICIES",
    "VARIANTS",
    "WEIGHT_DECAY_MODES",
    "AdamConfig",
    "AdamState",
    "adam_step",
    "all_finite",
    "bias_corrections",
    "init",
    "is_textbook",
    "update",
]


def adam_step(x: Any, g: Any, v: Any, s: Any, t: int, *, lr: float, beta1: float, beta2: float, eps: float,
              xp: Any) -> tuple[Any, Any, Any]:
    r"""Algorithm 1 of Kingma & Ba (2014) on one array: step :math:`t` from :math:`(x, v, s)_{t-1}`.

    .. math::

        v_t = \beta_1 v_{t-1} + (1-\beta_1) g_t, \qquad s_t = \beta_2 s_{t-1} + (1-\beta_2) g_t \odot g_t,

        \hat v_t = \frac{v_t}{1-\beta_1^t}, \qquad \hat s_t = \frac{s_t}{1-\beta_2^t}, \qquad
        x_t = x_{t-1} - \eta\,\frac{\hat v_t}{\sqrt{\hat s_t} + \epsilon}

    Parameters
    ----------
    x, g, v, s : array
        Parameter :math:`x_{t-1}`, gradient :math:`g_t`, moments :math:`v_{t-1}, s_{t-1}` (one dtype).
    t : int
        The step being taken, :math:`t \ge 1`.
    lr, beta1, beta2, eps : float
        :math:`\eta, \beta_1, \beta_2, \epsilon` (Python floats, so float32 stays float32).
    xp : namespace
        The arrays' array-API namespace.

    Returns
    -------
    (x, v, s) : tuple of array
        :math:`x_t, v_t, s_t`; the inputs are not modified. :func:`update` and every in-place kernel
        compute these same values, bit for bit, for a config with nothing but η, β1, β2, ε.

    Examples
    --------
    >>> import numpy as np, array_api_compat.numpy as xp
    >>> adam_step(np.array([1.0]), np.array([0.5]), np.zeros(1), np.zeros(1), 1,
    ...           lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, xp=xp)[0]            # x - lr * sign(g)
    array([0.9])
    """
    v = beta1 * v + (1.0 - beta1) * g
    s = beta2 * s + (1.0 - beta2) * (g * g)
    bc1, bc2 = bias_corrections(beta1, beta2, t)
    v_hat, s_hat = v / bc1, s / bc2
    return x - lr * v_hat / (xp.sqrt(s_hat) + eps), v, s


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
        ``AMSGrad.max`` says); None for the other variants (AMSGrad then starts from zeros).
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


def init(params: Any, config: AdamConfig | None = None, *, moment_dtype: Any = None,
         master: bool | None = None) -> AdamState:
    r"""Initial state for ``params``: step 0 and zero moments of the same shape.

    Parameters
    ----------
    params : array or list/tuple/dict of arrays
        The parameters (any array-API library, real floating dtype).
    config : AdamConfig, optional
        The variant's needs: both moments start at ``Yogi.initial_accumulator`` (optax:
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
    >>> from adam_np import variants
    >>> init(np.ones(2), variants.yogi(initial_accumulator=1e-6)).s
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
    fill = getattr(getattr(config, "variant", None), "initial_accumulator", 0.0)

    def full(x, dt, value):  # Dask arrays: moments chunked as their parameter
        if is_lazy(x):
            return xp.full_like(x, value, dtype=dt)
        return xp.full(x.shape, value, dtype=dt, device=device_of(x))

    def moments():
        return [full(x, dt, fill) for x, dt in zip(leaves, mdtypes)]

    cdtypes = [xp.result_type(x.dtype, dt) for x, dt in zip(leaves, mdtypes)]
    if master is None:
        master = any(c != x.dtype for x, c in zip(leaves, cdtypes))
    copies = [xp.astype(x, c, copy=True) for x, c in zip(leaves, cdtypes)] if master else None
    unflatten = treedef.unflatten
    s_max = None
    if config is not None and config.variant_name == "amsgrad":
        s_max = unflatten([full(x, dt, 0.0) for x, dt in zip(leaves, mdtypes)])
    return AdamState(0, unflatten(moments()), unflatten(moments()), 0,
                     master=None if copies is None else unflatten(copies), s_max=s_max)


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
    if config.variant_name != "amsgrad" or state.s_max is None:
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
    variant = config.variant_name
    if variant == "nadam":
        mu_product, c_g, c_v = _rules.nadam_coefficients(config.beta1, config.variant, step, mu_product)
        step_size = lr * math.sqrt(bc2) if config.eps_mode == "hat" else lr
        return _Scalars(lr, bc1, bc2, step_size, c_g, c_v, mu_product)
    rect = 1.0
    if variant == "radam":
        rect = _rules.radam_rectification(config.beta2, step, config.variant.threshold)
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
    if config.variant_name == "adamax":
        return _rules.adamax_norm(s, g, config.beta2, config.eps if config.eps_mode == "root" else 0.0, xp=xp)
    if config.variant_name == "yogi":
        return _rules.yogi_second_moment(s, g, config.beta2, xp=xp)
    beta2 = config.beta2
    return beta2 * s + (1.0 - beta2) * (g * g)


def _numerator(v: Any, g: Any, config: AdamConfig, c: _Scalars) -> Any:
    r"""What the step divides: :math:`\hat v = v/(1-\beta_1^t)`, raw :math:`v` for ``eps_hat`` (the
    correction is in the step size), or NAdam's :math:`\mu_{t+1}`-weighted Nesterov combination."""
    if config.variant_name == "nadam":
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
    if config.variant_name == "adamax":
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
    if config.variant_name == "amsgrad":
        s_max, s_eff = _rules.amsgrad_max(s, s_max, c.bc2, config.variant.max, xp=xp)
        corrected = config.variant.max == "corrected"
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
    if is_textbook(config):
        return adam_step(x, g, v, s, step, lr=lr, beta1=config.beta1, beta2=config.beta2, eps=config.eps, xp=xp)
    c = _step_scalars(config, lr, step, 1.0)
    x, v, s, _ = _leaf_update(x, g, v, s, None, config, c, xp=xp)
    return x, v, s


def is_textbook(config: AdamConfig) -> bool:
    """Whether ``config`` is Algorithm 1 with nothing added: no variant, ε outside the root, no weight decay,
    no ``maximize``, no folding; :func:`update` then runs :func:`adam_step`.

    Parameters
    ----------
    config : AdamConfig

    Returns
    -------
    bool

    Examples
    --------
    >>> is_textbook(AdamConfig(lr=0.01, eps=1e-6)), is_textbook(AdamConfig(eps_mode="hat"))
    (True, False)
    """
    return (config.variant is None and config.eps_mode == "outside" and not config.weight_decay
            and not config.maximize and not config.eps_root and not config.fold_bias_correction)


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
        With ``config.nonfinite == "raise"``: on a non-finite gradient, or finite gradients whose step
        would make a new parameter or moment NaN or ±inf (an overflow: in float16 moments a gradient
        of 300 squares to inf); nothing is computed into the caller's arrays.

    Notes
    -----
    Hyper-parameters enter as Python floats, so float32 inputs give float32 outputs. The
    whole step is validated first; with ``nonfinite="skip"`` a non-finite gradient anywhere,
    or a step whose new parameters or state would hold NaN or ±inf, returns the inputs unchanged
    (``state.skipped`` + 1, ``state.step`` unchanged). ``"propagate"`` returns such a state as
    computed: once ``s`` is inf, that parameter stops moving (:math:`v/\sqrt{\infty} = 0`), or turns NaN.

    Dask arrays (``dask.array``, through array-api-compat) give Dask arrays chunked as the parameters, with
    the same ufuncs per chunk, so they compute bit for bit what NumPy computes. With
    ``nonfinite="propagate"`` building the step computes nothing. With ``"raise"`` and ``"skip"`` the step's
    outcome decides the returned state, so ``update`` persists the new arrays together with the finiteness
    of every gradient chunk in one pass (on the active ``dask.distributed`` client, if any) and returns the
    persisted arrays, or acts as above with the inputs untouched.

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
    lazy = is_lazy(leaves.params[0])  # Dask: the check is computed with the step below, not before it
    if lazy:  # results chunked as the parameters, whatever the chunks of the gradients and moments
        leaves = leaves._replace(**{k: [like_chunks(a, x) for a, x in zip(getattr(leaves, k), leaves.params)]
                                    for k in ("grads", "v", "s")})
    if config.nonfinite != "propagate" and not lazy and not all_finite(leaves.grads, xp=xp):
        return _nonfinite(params, state, config, t)
    lr = config.lr_at(t)  # only for a step actually taken; still before anything is computed
    c = _step_scalars(config, lr, t, state.mu_product)
    n = len(leaves.params)
    masters = leaves.master if leaves.master is not None else [None] * n
    s_maxes = leaves.s_max
    if config.variant_name == "amsgrad" and s_maxes is None:
        s_maxes = [xp.zeros_like(s) for s in leaves.s]
    elif s_maxes is None:
        s_maxes = [None] * n
    textbook = is_textbook(config)
    new_p, new_v, new_s, new_m, new_smax = [], [], [], [], []
    for x, g, v, s, m, s_max in zip(leaves.params, leaves.grads, leaves.v, leaves.s, masters, s_maxes):
        # Mixed precision: compute in the wider of the parameter and moment dtypes, on the
        # master copy when there is one; without casts this is exactly adam_step / _leaf_update.
        dt = xp.result_type(x.dtype, v.dtype)
        x_c = m if m is not None else _cast(x, dt, xp)
        s_max_c = None if s_max is None else _cast(s_max, dt, xp)
        g_c, v_c, s_c = _cast(g, dt, xp), _cast(v, dt, xp), _cast(s, dt, xp)
        if textbook:
            x_c, v_c, s_c = adam_step(x_c, g_c, v_c, s_c, t, lr=lr, beta1=config.beta1, beta2=config.beta2,
                                      eps=config.eps, xp=xp)
        else:
            x_c, v_c, s_c, s_max_c = _leaf_update(x_c, g_c, v_c, s_c, s_max_c, config, c, xp=xp)
        new_p.append(_cast(x_c, x.dtype, xp))
        new_v.append(_cast(v_c, v.dtype, xp))
        new_s.append(_cast(s_c, s.dtype, xp))
        new_m.append(_cast(x_c, x_c.dtype, xp))
        new_smax.append(None if s_max_c is None else _cast(s_max_c, v.dtype, xp))
    new_arrays = {"params": new_p, "state.v": new_v, "state.s": new_s}
    if leaves.master is not None:
        new_arrays["state.master"] = new_m
    if config.variant_name == "amsgrad":
        new_arrays["state.s_max"] = new_smax
    if lazy and config.nonfinite != "propagate":
        # One persist computes the step and the finiteness of every gradient chunk and of the new state
        # together; a non-finite chunk anywhere discards the whole step (no partial update across chunks or arrays).
        checked = [*leaves.grads, *(a for arrays in new_arrays.values() for a in arrays)]
        finite = xp.all(xp.stack([xp.all(xp.isfinite(a)) for a in checked]))
        new_p, new_v, new_s, new_m, new_smax, (finite,) = persist_groups(
            [new_p, new_v, new_s, new_m if leaves.master is not None else None, new_smax, [finite]])
        if not bool(finite.compute()):
            return _nonfinite(params, state, config, t)
    elif config.nonfinite != "propagate" and not lazy:
        for name, arrays in new_arrays.items():  # finite gradients, but the step overflowed: all or nothing
            if not all_finite(arrays, xp=xp):
                i = next(i for i, a in enumerate(arrays) if not all_finite([a], xp=xp))
                return _nonfinite(params, state, config, t, (leaves.treedef.leaf_names(name)[i], arrays[i].dtype))
    unflatten = leaves.treedef.unflatten
    return unflatten(new_p), AdamState(
        t, unflatten(new_v), unflatten(new_s), int(state.skipped),
        master=None if leaves.master is None else unflatten(new_m),
        s_max=unflatten(new_smax) if config.variant_name == "amsgrad" else state.s_max,
        mu_product=c.mu_product,
    )


def _nonfinite(params: Any, state: AdamState, config: AdamConfig, t: int,
               overflow: tuple | None = None) -> tuple[Any, AdamState]:
    """A step with a non-finite gradient, or whose result ``overflow = (name, dtype)`` is not finite: raise
    (``"raise"``) or return the inputs, one more skipped (``"skip"``)."""
    if config.nonfinite == "raise" and overflow is not None:
        name, dtype = overflow
        raise FloatingPointError(
            f"step {t} would make {name} ({dtype}) NaN or inf although the gradients are finite: an overflow "
            f"(e.g. g*g beyond the largest {dtype}); nothing was updated (use a wider moment_dtype, smaller "
            "gradients or lr; nonfinite='skip' skips such steps, 'propagate' applies them)")
    if config.nonfinite == "raise":
        raise FloatingPointError(
            f"grads contain NaN or inf at step {t}; nothing was updated "
            "(use nonfinite='skip' to skip such steps or 'propagate' to apply them)"
        )
    return params, state._replace(step=t - 1, skipped=int(state.skipped) + 1)


def _cast(x: Any, dtype: Any, xp: Any) -> Any:
    """``x`` as an array of ``dtype``; NumPy's 0-d arithmetic returns scalars, made 0-d arrays again."""
    if x.ndim == 0:
        x = xp.asarray(x)
    return x if x.dtype == dtype else xp.astype(x, dtype)
