r"""Adam's variants as rules on the one core of :mod:`adam_np.core.adam`, and their config constructors.

Each variant is an :class:`~adam_np.AdamConfig` whose ``variant`` (and a few option fields) selects
one of the small pieces that :func:`adam_np.update` assembles; nothing here copies the update.
The rules below are pure functions on an array-API namespace ``xp`` (arrays) or on Python floats
(per-step scalars). Notation: :math:`g` gradient, :math:`v, s` first and second moment,
:math:`\text{bc}_1 = 1-\beta_1^t`, :math:`\text{bc}_2 = 1-\beta_2^t`.

==========  ===================================================================  ====================
variant     update (after :math:`v_t = \beta_1 v_{t-1} + (1-\beta_1) g_t`)         reference
==========  ===================================================================  ====================
adam        :math:`x \mathrel{-}= \eta\,\hat v/(\sqrt{\hat s}+\epsilon)`                  Kingma & Ba 2014
amsgrad     as adam with :math:`\hat s` from :math:`\max_{i\le t} s_i` (raw or corrected)   Reddi et al. 2018
adamw       any rule with :math:`x \leftarrow (1-\eta\lambda)x` first                        Loshchilov & Hutter 2019
adamax      :math:`u_t = \max(\beta_2 u_{t-1}, |g|+\epsilon)`, :math:`x \mathrel{-}= \eta\,\hat v/u_t`  Kingma & Ba §7.1
nadam       :math:`x \mathrel{-}= \eta\,(c_v v + c_g g)/(\sqrt{\hat s}+\epsilon)`            Dozat 2016
radam       rectified :math:`r_t` while :math:`\rho_t > 5`, else :math:`x \mathrel{-}= \eta\hat v`       Liu et al. 2020
yogi        :math:`s_t = s_{t-1} - (1-\beta_2)\,\mathrm{sign}(s_{t-1}-g^2)\,g^2`            Zaheer et al. 2018
==========  ===================================================================  ====================

Examples
--------
>>> import numpy as np
>>> import adam_np
>>> from adam_np import variants
>>> x = np.array([1.0, -1.0])
>>> config = variants.amsgrad(lr=0.1)
>>> state = adam_np.init(x, config)
>>> x, state = adam_np.update(np.array([0.5, 2.0]), state, x, config)
>>> x
array([ 0.9, -1.1])
"""

from __future__ import annotations

import math
import struct
from typing import Any

__all__ = [
    "adam",
    "adamax",
    "adamax_norm",
    "adamw",
    "amsgrad",
    "amsgrad_max",
    "nadam",
    "nadam_coefficients",
    "nadam_mu",
    "radam",
    "radam_rectification",
    "radam_rho",
    "round_float32",
    "yogi",
    "yogi_second_moment",
]


# --------------------------------------------------------------------------- array rules


def adamax_norm(u: Any, g: Any, beta2: float, eps: float, *, xp: Any) -> Any:
    r"""AdaMax's exponentially weighted infinity norm :math:`u_t = \max(\beta_2 u_{t-1},\ |g_t| + \epsilon)`.

    Parameters
    ----------
    u : array
        :math:`u_{t-1}` (held in ``state.s``).
    g : array
        The gradient :math:`g_t`.
    beta2 : float
        Decay :math:`\beta_2`.
    eps : float
        ε inside the maximum (torch, optax); 0.0 for the paper's and Keras' form.
    xp : namespace

    Returns
    -------
    array
        :math:`u_t \ge |g_t|`.

    Examples
    --------
    >>> import numpy as np, array_api_compat.numpy as xp
    >>> adamax_norm(np.array([1.0, 1.0]), np.array([0.5, -3.0]), 0.9, 0.0, xp=xp)
    array([0.9, 3. ])
    """
    a = xp.abs(g)
    if eps:
        a = a + eps
    return xp.maximum(beta2 * u, a)


def yogi_second_moment(s: Any, g: Any, beta2: float, *, xp: Any) -> Any:
    r"""Yogi's additive second moment :math:`s_t = s_{t-1} - (1-\beta_2)\,\mathrm{sign}(s_{t-1} - g_t^2)\,g_t^2`.

    Unlike Adam's :math:`s_t - s_{t-1} = (1-\beta_2)(g_t^2 - s_{t-1})`, the change does not scale with
    :math:`s_{t-1}`, so :math:`s` cannot collapse fast when gradients become small. It stays
    :math:`\ge 0` when it starts :math:`\ge 0`: if :math:`s_{t-1} > g^2` it shrinks by at most
    :math:`(1-\beta_2) s_{t-1}`, otherwise it grows.

    Parameters
    ----------
    s : array
        :math:`s_{t-1}`.
    g : array
        The gradient :math:`g_t`.
    beta2 : float
    xp : namespace

    Returns
    -------
    array

    Examples
    --------
    >>> import numpy as np, array_api_compat.numpy as xp
    >>> yogi_second_moment(np.array([1.0, 0.0]), np.array([0.0, 2.0]), 0.5, xp=xp)
    array([1., 2.])
    """
    g2 = g * g
    return s - (1.0 - beta2) * xp.sign(s - g2) * g2


def amsgrad_max(s: Any, s_max: Any, bc2: float, mode: str, *, xp: Any) -> tuple[Any, Any]:
    r"""AMSGrad's running maximum; returns ``(new s_max, second moment for the denominator)``.

    ``"raw"`` (torch, Keras): :math:`m_t = \max(m_{t-1}, s_t)`, the denominator then divides by
    :math:`1-\beta_2^t`. ``"corrected"`` (optax): :math:`m_t = \max(m_{t-1}, s_t/(1-\beta_2^t))`, used
    as :math:`\hat s` directly. The two differ: a raw maximum carried from an early step is divided
    by a later, larger :math:`1-\beta_2^t`.

    Parameters
    ----------
    s : array
        :math:`s_t`.
    s_max : array
        :math:`m_{t-1}` (zeros at the start).
    bc2 : float
        :math:`1-\beta_2^t`.
    mode : {"raw", "corrected"}
    xp : namespace

    Returns
    -------
    tuple of array

    Examples
    --------
    >>> import numpy as np, array_api_compat.numpy as xp
    >>> amsgrad_max(np.array([1.0]), np.array([2.0]), 0.5, "raw", xp=xp)[0]
    array([2.])
    >>> amsgrad_max(np.array([1.0]), np.array([2.0]), 0.25, "corrected", xp=xp)[0]
    array([4.])
    """
    m = xp.maximum(s_max, s if mode == "raw" else s / bc2)
    return m, m


# --------------------------------------------------------------------------- per-step scalars


def round_float32(value: float) -> float:
    """``value`` rounded to the nearest float32 (as a Python float): torch keeps NAdam's μ-product so.

    Parameters
    ----------
    value : float

    Returns
    -------
    float

    Examples
    --------
    >>> round_float32(0.1)
    0.10000000149011612
    """
    return struct.unpack("f", struct.pack("f", value))[0]


def nadam_mu(beta1: float, step: int, momentum_decay: float, schedule: str = "decay") -> float:
    r"""NAdam's momentum coefficient :math:`\mu_t = \beta_1\,(1 - \tfrac12\,0.96^{t\psi})` (Dozat 2016, torch).

    Parameters
    ----------
    beta1 : float
    step : int
        :math:`t \ge 1`.
    momentum_decay : float
        :math:`\psi` (torch 4e-3; Keras 3 uses 1).
    schedule : {"decay", "constant"}
        ``"constant"`` gives :math:`\mu_t = \beta_1` (optax).

    Returns
    -------
    float

    Examples
    --------
    >>> round(nadam_mu(0.9, 1, 4e-3), 6)
    0.450073
    """
    if schedule == "constant":
        return beta1
    return beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))


def nadam_coefficients(config: Any, step: int, mu_product: float) -> tuple[float, float, float]:
    r"""NAdam's Nesterov combination :math:`\hat v_t = c_v v_t + c_g g_t` at step ``step``.

    .. math::

        \Pi_t = \Pi_{t-1}\mu_t,\qquad c_g = \frac{1-\mu_t}{1-\Pi_t},\qquad
        c_v = \frac{\mu_{t+1}}{1 - \Pi_t\,\mu_{t+1}}

    With ``nadam_schedule="constant"`` (:math:`\mu_t = \beta_1`, :math:`\Pi_t = \beta_1^t`) this is
    optax's ``nesterov=True``: :math:`\beta_1 v/(1-\beta_1^{t+1}) + (1-\beta_1) g/(1-\beta_1^t)`.

    Parameters
    ----------
    config : AdamConfig
        Uses ``beta1``, ``nadam_schedule``, ``momentum_decay``, ``mu_product_dtype``.
    step : int
        :math:`t \ge 1`.
    mu_product : float
        :math:`\Pi_{t-1}` (``state.mu_product``, 1.0 at the start).

    Returns
    -------
    (mu_product, c_g, c_v) : tuple of float
        :math:`\Pi_t` (with ``mu_product_dtype="float32"`` a float32 product of float32 :math:`\mu_t`, as
        torch's ``mu_product *= mu`` on a float32 tensor), and the coefficients.

    Examples
    --------
    >>> from adam_np import AdamConfig
    >>> prod, c_g, c_v = nadam_coefficients(AdamConfig(variant="nadam", nadam_schedule="constant"), 1, 1.0)
    >>> round(c_g, 12), round(c_v, 12)
    (1.0, 4.736842105263)
    """
    beta1 = config.beta1
    if config.nadam_schedule == "constant":
        return mu_product, (1.0 - beta1) / (1.0 - beta1**step), beta1 / (1.0 - beta1 ** (step + 1))
    mu = nadam_mu(beta1, step, config.momentum_decay)
    mu_next = nadam_mu(beta1, step + 1, config.momentum_decay)
    if config.mu_product_dtype == "float32":  # torch: a float32 tensor times mu cast to float32
        mu_product = round_float32(mu_product * round_float32(mu))
    else:
        mu_product = mu_product * mu
    return mu_product, (1.0 - mu) / (1.0 - mu_product), mu_next / (1.0 - mu_product * mu_next)


def radam_rho(beta2: float, step: int) -> tuple[float, float]:
    r"""RAdam's SMA lengths :math:`\rho_\infty = 2/(1-\beta_2) - 1` and
    :math:`\rho_t = \rho_\infty - 2t\beta_2^t/(1-\beta_2^t)`.

    Parameters
    ----------
    beta2 : float
    step : int

    Returns
    -------
    (rho_inf, rho_t) : tuple of float

    Examples
    --------
    >>> rho_inf, rho_1 = radam_rho(0.999, 1)
    >>> round(rho_inf, 6), round(rho_1, 6)
    (1999.0, 1.0)
    """
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    beta2_t = beta2**step
    return rho_inf, rho_inf - 2.0 * step * beta2_t / (1.0 - beta2_t)


def radam_rectification(beta2: float, step: int, threshold: float = 5.0) -> float | None:
    r"""RAdam's variance rectification :math:`r_t`, or None while :math:`\rho_t \le` ``threshold``.

    .. math::

        r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\,\rho_\infty}{(\rho_\infty - 4)(\rho_\infty - 2)\,\rho_t}}

    While None the step is SGD with momentum on the bias-corrected :math:`\hat v` (torch, optax); torch
    rectifies when :math:`\rho_t > 5`, optax when :math:`\rho_t \ge 5` (the same for every β2 whose
    :math:`\rho_t` never equals 5 exactly, e.g. 0.999: :math:`\rho_5 \approx 4.99`, :math:`\rho_6 \approx 5.99`).

    Parameters
    ----------
    beta2 : float
    step : int
    threshold : float, default 5.0

    Returns
    -------
    float or None

    Examples
    --------
    >>> radam_rectification(0.999, 5) is None, round(radam_rectification(0.999, 6), 6)
    (True, 0.025821)
    """
    rho_inf, rho_t = radam_rho(beta2, step)
    if not rho_t > threshold:
        return None
    return math.sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))


# --------------------------------------------------------------------------- config constructors


def _config(**fields: Any):
    # adam.py imports this module for the rules above, so AdamConfig is imported at call time.
    from .adam import AdamConfig

    return AdamConfig(**fields)


def adam(**options: Any):
    r"""Plain Adam (Algorithm 1): :math:`x \mathrel{-}= \eta\,\hat v_t/(\sqrt{\hat s_t} + \epsilon)`.

    Parameters
    ----------
    **options
        Any :class:`~adam_np.AdamConfig` field (defaults: torch's).

    Returns
    -------
    AdamConfig

    Examples
    --------
    >>> adam(lr=0.1).is_plain_adam
    True
    """
    return _config(**options)


def amsgrad(max: str = "raw", **options: Any):
    r"""AMSGrad (Reddi, Kale & Kumar 2018): the denominator uses the running maximum of the second moment.

    ``max="raw"`` (torch ``Adam(amsgrad=True)``, Keras): :math:`m_t = \max(m_{t-1}, s_t)`,
    :math:`x \mathrel{-}= \eta\,\hat v_t/(\sqrt{m_t/(1-\beta_2^t)} + \epsilon)`.
    ``max="corrected"`` (optax ``amsgrad``): :math:`m_t = \max(m_{t-1}, \hat s_t)`,
    :math:`x \mathrel{-}= \eta\,\hat v_t/(\sqrt{m_t} + \epsilon)`. In both, :math:`m_t` (``state.s_max``)
    never decreases; the two differ once a maximum from an early step is carried forward, since the
    raw one is later divided by a larger :math:`1-\beta_2^t`.

    Parameters
    ----------
    max : {"raw", "corrected"}, default "raw"
    **options
        Other :class:`~adam_np.AdamConfig` fields.

    Returns
    -------
    AdamConfig

    Examples
    --------
    >>> amsgrad(max="corrected").amsgrad_max
    'corrected'
    """
    return _config(variant="amsgrad", amsgrad_max=max, **options)


def adamw(weight_decay: float = 1e-2, mode: str = "decoupled", **options: Any):
    r"""AdamW (Loshchilov & Hutter 2019): decoupled weight decay, torch ordering.

    :math:`x \leftarrow (1 - \eta_t\lambda)\,x` before the moments, then the Adam step (which does not
    see :math:`\lambda`). ``mode="decoupled_add"`` is optax's order: :math:`x - \eta(u + \lambda x)`
    with :math:`u` the Adam direction; the same value in exact arithmetic, but in float32
    :math:`1 - \eta\lambda` loses most digits of a small :math:`\eta\lambda` (1e-6 is stored with a
    relative error up to 6%), so the two drift apart by ~1e-5 over 1000 steps. Pass ``variant=`` to
    decay another rule (torch ``AdamW(amsgrad=True)``, ``NAdam(decoupled_weight_decay=True)``...).

    Parameters
    ----------
    weight_decay : float, default 1e-2
        :math:`\lambda` (torch's default; optax 1e-4, Keras 4e-3).
    mode : {"decoupled", "decoupled_add"}, default "decoupled"
        torch's order or optax's.
    **options
        Other :class:`~adam_np.AdamConfig` fields.

    Returns
    -------
    AdamConfig

    Examples
    --------
    >>> c = adamw(); c.weight_decay, c.weight_decay_mode
    (0.01, 'decoupled')
    """
    return _config(weight_decay=weight_decay, weight_decay_mode=mode, **options)


def adamax(lr: Any = 2e-3, eps_mode: str = "root", **options: Any):
    r"""AdaMax (Kingma & Ba 2014, §7.1): Adam with the infinity norm.

    .. math::

        u_t = \max(\beta_2 u_{t-1},\ |g_t| + \epsilon),\qquad x \mathrel{-}= \frac{\eta}{1-\beta_1^t}\,\frac{v_t}{u_t}

    ``eps_mode="root"`` puts ε inside the maximum (torch, optax; the default here); ``"outside"``
    divides by :math:`u_t + \epsilon` with :math:`u_t = \max(\beta_2 u_{t-1}, |g_t|)` (Keras). The
    infinity norm needs no bias correction. ``state.s`` holds :math:`u`.

    Parameters
    ----------
    lr : float or callable, default 2e-3
        torch's default.
    eps_mode : {"root", "outside"}, default "root"
    **options
        Other :class:`~adam_np.AdamConfig` fields.

    Returns
    -------
    AdamConfig

    Examples
    --------
    >>> adamax().variant
    'adamax'
    """
    return _config(variant="adamax", lr=lr, eps_mode=eps_mode, **options)


def nadam(lr: Any = 2e-3, schedule: str = "decay", **options: Any):
    r"""NAdam (Dozat 2016): Adam with Nesterov momentum.

    .. math::

        x \mathrel{-}= \eta\left(\frac{\mu_{t+1}\,v_t}{1-\Pi_{t+1}} + \frac{(1-\mu_t)\,g_t}{1-\Pi_t}\right)
        \Big/ \left(\sqrt{\hat s_t} + \epsilon\right),\qquad \Pi_t = \prod_{i\le t}\mu_i

    with torch's momentum schedule :math:`\mu_t = \beta_1(1-\tfrac12\,0.96^{t\psi})`, :math:`\psi` =
    ``momentum_decay`` (4e-3), or ``schedule="constant"``: :math:`\mu_t = \beta_1` (optax ``nadam``).
    See :func:`nadam_coefficients`.

    Parameters
    ----------
    lr : float or callable, default 2e-3
        torch's default.
    schedule : {"decay", "constant"}, default "decay"
    **options
        Other :class:`~adam_np.AdamConfig` fields (``momentum_decay``, ``mu_product_dtype``...).

    Returns
    -------
    AdamConfig

    Examples
    --------
    >>> nadam().momentum_decay
    0.004
    """
    return _config(variant="nadam", lr=lr, nadam_schedule=schedule, **options)


def radam(**options: Any):
    r"""RAdam (Liu et al. 2020): Adam with the variance of the adaptive step rectified.

    While :math:`\rho_t \le 5` (:func:`radam_rho`; the first 5 steps for β2 = 0.999) the step is SGD
    with momentum, :math:`x \mathrel{-}= \eta\,\hat v_t`; afterwards
    :math:`x \mathrel{-}= \eta\,r_t\,\hat v_t/(\sqrt{\hat s_t}+\epsilon)` (:func:`radam_rectification`).
    torch places ε as ``eps_mode="hat"`` (:math:`\sqrt{1-\beta_2^t}/(\sqrt{s}+\epsilon)`), optax
    as ``"outside"``.

    Parameters
    ----------
    **options
        Other :class:`~adam_np.AdamConfig` fields (``radam_threshold``...).

    Returns
    -------
    AdamConfig

    Examples
    --------
    >>> radam(eps_mode="hat").radam_threshold
    5.0
    """
    return _config(variant="radam", **options)


def yogi(eps: float = 1e-3, initial_accumulator: float = 1e-6, **options: Any):
    r"""Yogi (Zaheer et al. 2018): additive second-moment update, :func:`yogi_second_moment`.

    .. math::

        s_t = s_{t-1} - (1-\beta_2)\,\mathrm{sign}(s_{t-1} - g_t^2)\,g_t^2,\qquad
        x \mathrel{-}= \eta\,\hat v_t/(\sqrt{\hat s_t} + \epsilon)

    Defaults as optax ``yogi``: ε = 1e-3, both moments start at 1e-6 (use
    :func:`adam_np.init` with this config), both bias-corrected.

    Parameters
    ----------
    eps : float, default 1e-3
    initial_accumulator : float, default 1e-6
    **options
        Other :class:`~adam_np.AdamConfig` fields.

    Returns
    -------
    AdamConfig

    Examples
    --------
    >>> yogi().initial_accumulator
    1e-06
    """
    return _config(variant="yogi", eps=eps, initial_accumulator=initial_accumulator, **options)
