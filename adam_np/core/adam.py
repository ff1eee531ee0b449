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

:func:`adam_step` is exactly these four lines on one array; :func:`update` computes the same operations in
the same order for a plain config. Options and variants enter at named points: gradient preprocessing
(``maximize``, weight decay), each variant's own rule (:mod:`adam_np.core.rules`: its second moment,
running maximum, numerator or denominator) and the per-step :class:`Coefficients`, computed by
:func:`coefficients` for this module and every in-place kernel alike.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from . import _tree
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
from .rules import PLAIN, ema

__all__ = [
    "EPS_MODES",
    "NONFINITE_POLICIES",
    "VARIANTS",
    "WEIGHT_DECAY_MODES",
    "AdamConfig",
    "AdamState",
    "Coefficients",
    "adam_step",
    "all_finite",
    "bias_corrections",
    "coefficients",
    "init",
    "update",
]

OUTSIDE, ROOT, SCALED, SCALED_ROOT = 0, 1, 2, 3
r"""The forms of the update (:attr:`Coefficients.form`), :math:`\alpha` its ``step_size``, :math:`b_i = 1-\beta_i^t`:
``OUTSIDE`` :math:`x - \alpha (v/b_1)/(\sqrt{s/b_2} + \epsilon_t)`;
``ROOT`` :math:`x - \alpha (v/b_1)/\sqrt{s/b_2 + \epsilon_t}`;
``SCALED`` :math:`x - \alpha v/(\sqrt{s} + \epsilon_t)` (``eps_mode="hat"``, or ``"outside"`` folded);
``SCALED_ROOT`` :math:`x - \alpha v/\sqrt{s + \epsilon_t}` (``"root"`` folded)."""


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
    v = ema(v, g, beta1)
    s = ema(s, g * g, beta2)
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


def all_finite(arrays: list, *, xp: Any, lazy: bool = False) -> Any:
    """Whether every element of every array is finite (no NaN, no ±inf): the one finiteness check.

    Parameters
    ----------
    arrays : list of array
        Arrays of namespace ``xp``.
    xp : namespace
    lazy : bool, default False
        Return the answer as a 0-d boolean array of ``xp`` (Dask: computed with the step it guards).

    Returns
    -------
    bool or 0-d array

    Examples
    --------
    >>> import numpy as np, array_api_compat.numpy as xp
    >>> all_finite([np.ones(2), np.array([1.0, np.inf])], xp=xp)
    False
    """
    if lazy:
        return xp.all(xp.stack([xp.all(xp.isfinite(a)) for a in arrays]))
    return all(bool(xp.all(xp.isfinite(a))) for a in arrays)


class Coefficients(NamedTuple):
    r"""The per-step scalars of one update, as Python floats: what :func:`update` and every kernel multiply by.

    The first twelve fields are what the in-place kernels read (in this order); the last four are
    the variants' (NAdam's :math:`c_g, c_v, \prod\mu`, RAdam's phase). ``bc1, bc2`` are
    :math:`1-\beta_1^t, 1-\beta_2^t`; ``step_size`` multiplies numerator/denominator: :math:`\eta_t` for the
    ``OUTSIDE``/``ROOT`` forms, :math:`\alpha_t = \eta_t\sqrt{b_2}/b_1` for the ``SCALED`` forms (times RAdam's
    :math:`r_t`); ``eps_t`` is ε, or with ``fold_bias_correction`` :math:`\epsilon\sqrt{b_2}` (outside) or
    :math:`\epsilon b_2` (root), so that the folded update equals the unfolded one in exact arithmetic.
    """

    form: int
    maximize: bool
    weight_decay: float  # L2 (g + wd*x) in the kernels; the pure path reads config.weight_decay_mode
    beta1: float
    one_minus_beta1: float
    beta2: float
    one_minus_beta2: float
    lr_t: float
    bc1: float
    bc2: float
    step_size: float
    eps_t: float
    nadam_g: float = 0.0
    nadam_v: float = 0.0
    mu_product: float = 1.0
    rectified: bool = True


_FORMS = {"outside": OUTSIDE, "root": ROOT, "hat": SCALED}


def coefficients(config: AdamConfig, step: int, mu_product: float = 1.0, *,
                 fold_bias_correction: bool = False) -> Coefficients:
    r"""The :class:`Coefficients` of step ``step`` (t ≥ 1): the one place they are computed.

    Parameters
    ----------
    config : AdamConfig
    step : int
        The step :math:`t` being taken (a schedule ``lr`` is evaluated at it).
    mu_product : float, default 1.0
        NAdam's :math:`\prod_{i<t}\mu_i` (``state.mu_product``).
    fold_bias_correction : bool, default False
        Plain Adam with ``eps_mode`` ``"outside"`` or ``"root"`` only: fold the bias corrections into
        ``step_size`` and ``eps_t`` (the paper's "more efficient order", §2): one division and one square
        root per element instead of three divisions, the same update up to rounding.

    Returns
    -------
    Coefficients

    Examples
    --------
    >>> c = coefficients(AdamConfig(lr=0.1), 1)
    >>> c.bc1, c.bc2, c.step_size
    (0.09999999999999998, 0.0010000000000000009, 0.1)
    >>> coefficients(AdamConfig(lr=0.1), 1, fold_bias_correction=True).form == SCALED
    True
    """
    lr = config.lr if type(config.lr) is float else config.lr_at(step)
    beta1, beta2 = config.beta1, config.beta2
    bc1, bc2 = bias_corrections(beta1, beta2, step)
    form, step_size, eps = _FORMS[config.eps_mode], lr, config.eps
    if form == SCALED:
        step_size = lr * math.sqrt(bc2) / bc1
    if fold_bias_correction:
        check_fold(config, fold_bias_correction)
        step_size = lr * math.sqrt(bc2) / bc1
        form, eps = (SCALED, eps * math.sqrt(bc2)) if form == OUTSIDE else (SCALED_ROOT, eps * bc2)
    c = Coefficients(form, config.maximize, config.weight_decay, beta1, 1.0 - beta1, beta2, 1.0 - beta2,
                     lr, bc1, bc2, step_size, eps, 0.0, 0.0, mu_product, True)
    return c if config.variant is None else config.variant.coefficients(c, config, step)


def check_fold(config: AdamConfig, fold_bias_correction: bool) -> None:
    """Refuse ``fold_bias_correction=True`` for a config it does not apply to (a variant, ``eps_mode="hat"``,
    ``eps_root``), naming them."""
    if fold_bias_correction and (not config.is_plain_adam or config.eps_mode == "hat" or config.eps_root):
        raise ValueError(f"fold_bias_correction=True applies to plain Adam with eps_mode 'outside' or 'root' and no "
                         f"eps_root, not variant={config.variant_name!r}, eps_mode={config.eps_mode!r}, "
                         f"eps_root={config.eps_root!r}")


def _leaf_update(x: Any, g: Any, v: Any, s: Any, s_max: Any, config: AdamConfig, c: Coefficients, *, xp: Any):
    """One step on one array: ``maximize``, weight decay, the moments, then the variant's rule; returns new
    ``(x, v, s, s_max)``. For plain Adam these are :func:`adam_step`'s operations in its order."""
    rule = config.variant or PLAIN
    if c.maximize:
        g = -g
    if config.weight_decay:
        if config.weight_decay_mode == "decoupled":  # torch AdamW: x *= 1 - lr*wd, before the moments
            x = x * (1.0 - c.lr_t * config.weight_decay)
        elif config.weight_decay_mode == "l2":
            g = g + config.weight_decay * x
    v = ema(v, g, c.beta1)
    s = rule.second_moment(s, g, config, xp=xp)
    if not c.rectified:  # RAdam while rho_t <= threshold: SGD with momentum on the bias-corrected v
        return _apply(x, v / c.bc1, None, config, c), v, s, s_max
    s_max, s_eff, corrected = rule.running_max(s, s_max, c, xp=xp)
    num = rule.numerator(v, g, c)
    return _apply(x, num, rule.denominator(s_eff, config, c, corrected=corrected, xp=xp), config, c), v, s, s_max


def _apply(x: Any, num: Any, den: Any, config: AdamConfig, c: Coefficients) -> Any:
    r""":math:`x - \text{step} \cdot \text{num}/\text{den}` (``den`` None: RAdam's un-rectified
    :math:`x - \eta\hat v`); with ``decoupled_add`` weight decay optax's :math:`x - \eta(u + \lambda x)`."""
    if config.weight_decay and config.weight_decay_mode == "decoupled_add":
        u = num if den is None else (num / den if c.step_size == c.lr_t else (c.step_size / c.lr_t) * num / den)
        return x - c.lr_t * (u + config.weight_decay * x)
    if den is None:
        return x - c.lr_t * num
    return x - c.step_size * num / den


def update(grads: Any, state: AdamState, params: Any, config: AdamConfig | None = None, *,
           fold_bias_correction: bool = False) -> tuple[Any, AdamState]:
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
    fold_bias_correction : bool, default False
        A speed switch, as for :func:`coefficients` (the same update up to rounding).

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
    # only for a step actually taken; still before anything is computed
    c = coefficients(config, t, state.mu_product, fold_bias_correction=fold_bias_correction)
    n = len(leaves.params)
    masters = leaves.master if leaves.master is not None else [None] * n
    s_maxes = leaves.s_max
    if config.variant_name == "amsgrad" and s_maxes is None:
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
        g_c, v_c, s_c = _cast(g, dt, xp), _cast(v, dt, xp), _cast(s, dt, xp)
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
        finite = all_finite(checked, xp=xp, lazy=True)
        new_p, new_v, new_s, new_m, new_smax, (finite,) = persist_groups(
            [new_p, new_v, new_s, new_m if leaves.master is not None else None, new_smax, [finite]])
        if not bool(finite.compute()):  # the rare failing step: which array, read again
            if not bool(all_finite(leaves.grads, xp=xp, lazy=True).compute()):
                return _nonfinite(params, state, config, t)
            persisted = {"params": new_p, "state.v": new_v, "state.s": new_s, "state.master": new_m,
                         "state.s_max": new_smax}
            for name in new_arrays:
                for i, a in enumerate(persisted[name]):
                    if not bool(all_finite([a], xp=xp, lazy=True).compute()):
                        return _nonfinite(params, state, config, t, (leaves.treedef.leaf_names(name)[i], a.dtype))
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
