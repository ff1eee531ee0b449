r"""Adam's variants as rules on the one core of :mod:`adam_np.core.adam`, and their config constructors.

Each constructor returns an :class:`~adam_np.AdamConfig` whose ``variant`` is the rule's options
object (:class:`AMSGrad`, :class:`AdaMax`, :class:`NAdam`, :class:`RAdam`, :class:`Yogi`); the rules
themselves, pure functions with their papers' formulas, are in :mod:`adam_np.core.rules` and are
re-exported here. Nothing here copies the update. Notation: :math:`g` gradient, :math:`v, s` first and second moment,
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

from typing import Any

from . import rules as _rules
from .config import AdamConfig
from .rules import (  # re-exported: the options objects and rule functions live with their variants there
    AMSGRAD_MAXES,
    MU_PRODUCT_DTYPES,
    NADAM_SCHEDULES,
    SPECS,
    AdaMax,
    AMSGrad,
    NAdam,
    RAdam,
    Variant,
    Yogi,
    adamax_norm,
    amsgrad_max,
    nadam_coefficients,
    nadam_mu,
    radam_rectification,
    radam_rho,
    round_float32,
    yogi_second_moment,
)

__all__ = ["adam", "adamax", "adamw", "amsgrad", "nadam", "radam", "yogi", *_rules.__all__]  # + the rules


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
    return AdamConfig(**options)


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
    >>> amsgrad(max="corrected").variant
    AMSGrad(max='corrected')
    """
    return AdamConfig(variant=AMSGrad(max=max), **options)


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
    return AdamConfig(weight_decay=weight_decay, weight_decay_mode=mode, **options)


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
    >>> adamax().variant_name
    'adamax'
    """
    return AdamConfig(variant=AdaMax(), lr=lr, eps_mode=eps_mode, **options)


def nadam(lr: Any = 2e-3, schedule: str = "decay", momentum_decay: float = 4e-3, mu_product_dtype: str = "float64",
          **options: Any):
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
    momentum_decay : float, default 4e-3
        :math:`\psi` of the ``"decay"`` schedule.
    mu_product_dtype : {"float64", "float32"}, default "float64"
        Precision of :math:`\Pi_t` (torch: float32).
    **options
        Other :class:`~adam_np.AdamConfig` fields.

    Returns
    -------
    AdamConfig

    Examples
    --------
    >>> nadam().variant.momentum_decay
    0.004
    """
    return AdamConfig(variant=NAdam(schedule, momentum_decay, mu_product_dtype), lr=lr, **options)


def radam(threshold: float = 5.0, **options: Any):
    r"""RAdam (Liu et al. 2020): Adam with the variance of the adaptive step rectified.

    While :math:`\rho_t \le 5` (:func:`radam_rho`; the first 5 steps for β2 = 0.999) the step is SGD
    with momentum, :math:`x \mathrel{-}= \eta\,\hat v_t`; afterwards
    :math:`x \mathrel{-}= \eta\,r_t\,\hat v_t/(\sqrt{\hat s_t}+\epsilon)` (:func:`radam_rectification`).
    torch places ε as ``eps_mode="hat"`` (:math:`\sqrt{1-\beta_2^t}/(\sqrt{s}+\epsilon)`), optax
    as ``"outside"``.

    Parameters
    ----------
    threshold : float, default 5.0
        Rectify while :math:`\rho_t >` this (torch 5; ≥ 4).
    **options
        Other :class:`~adam_np.AdamConfig` fields.

    Returns
    -------
    AdamConfig

    Examples
    --------
    >>> radam(eps_mode="hat").variant
    RAdam(threshold=5.0)
    """
    return AdamConfig(variant=RAdam(threshold), **options)


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
    >>> yogi().variant
    Yogi(initial_accumulator=1e-06)
    """
    return AdamConfig(variant=Yogi(initial_accumulator), eps=eps, **options)
