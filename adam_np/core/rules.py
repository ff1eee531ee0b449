r"""The variants' rules and options: what AMSGrad, AdaMax, NAdam, RAdam and Yogi change in Adam.

Each variant is a small frozen dataclass holding its own options (:class:`AMSGrad`, :class:`AdaMax`,
:class:`NAdam`, :class:`RAdam`, :class:`Yogi`), given to :class:`adam_np.AdamConfig` as ``variant=``;
a plain ``AdamConfig`` has none of these options. Below them, the rules themselves: pure functions on
an array-API namespace ``xp`` (arrays) or on Python floats (per-step scalars), each with its paper's
formula. :func:`adam_np.update` calls them; :mod:`adam_np.variants` builds configs from them.

This module sits below :mod:`.config` (which turns ``variant="amsgrad"`` into ``AMSGrad()``), so it
imports nothing of the package but the validation helpers.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from ._checks import _real

__all__ = [
    "AMSGRAD_MAXES",
    "MU_PRODUCT_DTYPES",
    "NADAM_SCHEDULES",
    "SPECS",
    "AMSGrad",
    "AdaMax",
    "NAdam",
    "RAdam",
    "Variant",
    "Yogi",
    "adamax_norm",
    "ema",
    "amsgrad_max",
    "nadam_coefficients",
    "nadam_mu",
    "radam_rectification",
    "radam_rho",
    "round_float32",
    "yogi_second_moment",
]

AMSGRAD_MAXES = ("raw", "corrected")
"""AMSGrad: maximum over the raw :math:`s` then bias-correct (torch, Keras), or over :math:`\\hat s` (optax)."""

NADAM_SCHEDULES = ("decay", "constant")
"""NAdam's momentum: :math:`\\mu_t = \\beta_1(1 - \\tfrac12 0.96^{t\\psi})` (torch, Keras), or
:math:`\\mu_t = \\beta_1` (optax ``nesterov=True``)."""

MU_PRODUCT_DTYPES = ("float64", "float32")
"""Precision of NAdam's running product :math:`\\prod_i \\mu_i` (torch keeps a float32 tensor)."""


# --------------------------------------------------------------------------- the variants and their options


class Variant:
    """A rule on Adam's core with its options; subclasses are frozen dataclasses named by ``name``."""

    name: ClassVar[str] = ""

    def check(self, config: Any) -> None:
        """Reject combinations with :class:`adam_np.AdamConfig` fields this rule has no meaning for.

        Parameters
        ----------
        config : AdamConfig
            The config being built (called from its ``__post_init__``).

        Raises
        ------
        ValueError
            Naming the field and the value.
        """

    # The rule's pieces; plain Adam (:data:`PLAIN`) is this base class, each variant overrides its own.
    def coefficients(self, c: Any, config: Any, step: int) -> Any:
        """The step's :class:`~adam_np.core.adam.Coefficients` with this rule's scalars (NAdam, RAdam)."""
        return c

    def second_moment(self, s: Any, g: Any, config: Any, *, xp: Any) -> Any:
        r""":math:`s_t = \beta_2 s_{t-1} + (1-\beta_2) g_t^2` (AdaMax and Yogi change it)."""
        return ema(s, g * g, config.beta2)

    def running_max(self, s: Any, s_max: Any, c: Any, *, xp: Any) -> tuple[Any, Any, bool]:
        """``(new s_max, s for the denominator, whether that s is already bias-corrected)`` (AMSGrad)."""
        return s_max, s, False

    def numerator(self, v: Any, g: Any, c: Any) -> Any:
        r""":math:`\hat v = v/(1-\beta_1^t)`, raw :math:`v` for the scaled forms (NAdam changes it)."""
        return v if c.form >= 2 else v / c.bc1  # 2, 3: core.adam.SCALED, SCALED_ROOT

    def denominator(self, s: Any, config: Any, c: Any, *, corrected: bool, xp: Any) -> Any:
        r"""The ε placement: :math:`\sqrt{\hat s} + \epsilon_t`, :math:`\sqrt{\hat s + \epsilon_t}` (root forms), on
        the raw :math:`s` for the scaled forms; ``eps_root`` under the root (AdaMax changes it)."""
        s_hat = s if (c.form >= 2 or corrected) else s / c.bc2
        if config.eps_root:
            s_hat = s_hat + config.eps_root
        return xp.sqrt(s_hat + c.eps_t) if c.form in (1, 3) else xp.sqrt(s_hat) + c.eps_t

    def to_dict(self) -> dict:
        """The name and the options as a JSON-friendly dict (what :meth:`AdamConfig.to_dict` stores).

        Returns
        -------
        dict

        Examples
        --------
        >>> AMSGrad(max="corrected").to_dict()
        {'name': 'amsgrad', 'max': 'corrected'}
        """
        return {"name": self.name, **{f.name: getattr(self, f.name) for f in fields(self)}}


def _choice(owner: str, name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{owner}.{name} must be one of {allowed}, got {value!r}")


@dataclass(frozen=True)
class AMSGrad(Variant):
    r"""AMSGrad (Reddi, Kale & Kumar 2018): the denominator uses :math:`m_t = \max(m_{t-1}, s_t)`.

    Parameters
    ----------
    max : {"raw", "corrected"}, default "raw"
        Maximum over the raw :math:`s` then divide by :math:`1-\beta_2^t` (torch, Keras), or over the
        corrected :math:`\hat s` (optax). See :func:`amsgrad_max`.

    Examples
    --------
    >>> AMSGrad()
    AMSGrad(max='raw')
    """

    name: ClassVar[str] = "amsgrad"
    max: str = "raw"

    def __post_init__(self) -> None:
        _choice("AMSGrad", "max", self.max, AMSGRAD_MAXES)

    def check(self, config: Any) -> None:  # noqa: D102 - see Variant.check
        if self.max == "corrected" and config.eps_mode == "hat":
            raise ValueError("eps_mode='hat' needs the raw second moment, so it cannot be combined with "
                             "AMSGrad(max='corrected'); use AMSGrad(max='raw')")

    def running_max(self, s: Any, s_max: Any, c: Any, *, xp: Any) -> tuple[Any, Any, bool]:  # noqa: D102
        s_max, _ = amsgrad_max(s, s_max, c.bc2, self.max, xp=xp)
        return s_max, s_max, self.max == "corrected"


@dataclass(frozen=True)
class AdaMax(Variant):
    r"""AdaMax (Kingma & Ba 2014, §7.1): :math:`u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon)` replaces
    :math:`\sqrt{\hat s}`; no options (``eps_mode`` says where ε goes: ``"root"`` inside the maximum,
    ``"outside"`` added to :math:`u`). See :func:`adamax_norm`.

    Examples
    --------
    >>> AdaMax().name
    'adamax'
    """

    name: ClassVar[str] = "adamax"

    def check(self, config: Any) -> None:  # noqa: D102 - see Variant.check
        if config.eps_mode == "hat" or config.eps_root:
            what = "eps_mode='hat'" if config.eps_mode == "hat" else f"eps_root={config.eps_root!r}"
            raise ValueError(f"{what} is not defined for variant AdaMax (it has no square root): use "
                             "eps_mode='root' (eps inside the max, torch/optax) or 'outside' (u + eps, Keras)")
        if config.eps == 0.0:
            raise ValueError("eps must be > 0 for variant AdaMax, got 0.0: u stays 0 until a nonzero gradient "
                             "arrives, and v/u would be 0/0")

    def second_moment(self, s: Any, g: Any, config: Any, *, xp: Any) -> Any:  # noqa: D102
        return adamax_norm(s, g, config.beta2, config.eps if config.eps_mode == "root" else 0.0, xp=xp)

    def denominator(self, s: Any, config: Any, c: Any, *, corrected: bool, xp: Any) -> Any:  # noqa: D102
        return s + c.eps_t if config.eps_mode == "outside" else s


@dataclass(frozen=True)
class NAdam(Variant):
    r"""NAdam (Dozat 2016): Nesterov momentum, :math:`\hat v_t = c_v v_t + c_g g_t` (:func:`nadam_coefficients`).

    Parameters
    ----------
    schedule : {"decay", "constant"}, default "decay"
        :math:`\mu_t = \beta_1(1 - \tfrac12\,0.96^{t\psi})` (torch, Keras with :math:`\psi = 1`) or
        :math:`\mu_t = \beta_1` (optax).
    momentum_decay : float, default 4e-3
        :math:`\psi \ge 0` of the ``"decay"`` schedule (torch's default).
    mu_product_dtype : {"float64", "float32"}, default "float64"
        Precision of the running product :math:`\prod_{i\le t}\mu_i` (torch: float32).

    Examples
    --------
    >>> NAdam(schedule="constant", momentum_decay=0.1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: NAdam.momentum_decay=0.1 has no effect with schedule='constant' (mu_t = beta1); ...
    """

    name: ClassVar[str] = "nadam"
    schedule: str = "decay"
    momentum_decay: float = 4e-3
    mu_product_dtype: str = "float64"

    def __post_init__(self) -> None:
        _choice("NAdam", "schedule", self.schedule, NADAM_SCHEDULES)
        _choice("NAdam", "mu_product_dtype", self.mu_product_dtype, MU_PRODUCT_DTYPES)
        psi = _real("NAdam.momentum_decay", self.momentum_decay)
        if not psi >= 0.0:
            raise ValueError(f"NAdam.momentum_decay must be >= 0, got {psi!r}")
        object.__setattr__(self, "momentum_decay", psi)
        if self.schedule == "constant":
            for f in fields(self):
                if f.name != "schedule" and getattr(self, f.name) != f.default:
                    raise ValueError(f"NAdam.{f.name}={getattr(self, f.name)!r} has no effect with schedule='constant' "
                                     f"(mu_t = beta1); leave it at its default {f.default!r} or use schedule='decay'")

    def coefficients(self, c: Any, config: Any, step: int) -> Any:  # noqa: D102
        mu_product, c_g, c_v = nadam_coefficients(config.beta1, self, step, c.mu_product)
        step_size = c.lr_t * math.sqrt(c.bc2) if config.eps_mode == "hat" else c.lr_t
        return c._replace(step_size=step_size, nadam_g=c_g, nadam_v=c_v, mu_product=mu_product)

    def numerator(self, v: Any, g: Any, c: Any) -> Any:  # noqa: D102
        return c.nadam_v * v + c.nadam_g * g


@dataclass(frozen=True)
class RAdam(Variant):
    r"""RAdam (Liu et al. 2020): the adaptive step rectified by :math:`r_t` (:func:`radam_rectification`).

    Parameters
    ----------
    threshold : float, default 5.0
        Rectify while :math:`\rho_t >` this (≥ 4), else take the SGD-with-momentum step.

    Examples
    --------
    >>> RAdam(threshold=3.0)
    Traceback (most recent call last):
    ...
    ValueError: RAdam.threshold must be >= 4 (the rectification needs rho_t > 4), got 3.0
    """

    name: ClassVar[str] = "radam"
    threshold: float = 5.0

    def __post_init__(self) -> None:
        threshold = _real("RAdam.threshold", self.threshold)
        if not threshold >= 4.0:
            raise ValueError(f"RAdam.threshold must be >= 4 (the rectification needs rho_t > 4), got {threshold!r}")
        object.__setattr__(self, "threshold", threshold)

    def coefficients(self, c: Any, config: Any, step: int) -> Any:  # noqa: D102
        rect = radam_rectification(config.beta2, step, self.threshold)
        return c._replace(rectified=False) if rect is None else c._replace(step_size=c.step_size * rect)


@dataclass(frozen=True)
class Yogi(Variant):
    r"""Yogi (Zaheer et al. 2018): the additive second moment of :func:`yogi_second_moment`.

    Parameters
    ----------
    initial_accumulator : float, default 0.0
        Value :math:`\ge 0` both moments start at in :func:`adam_np.init` (the paper and optax: 1e-6,
        what :func:`adam_np.variants.yogi` sets).

    Examples
    --------
    >>> Yogi(initial_accumulator=1e-6)
    Yogi(initial_accumulator=1e-06)
    """

    name: ClassVar[str] = "yogi"
    initial_accumulator: float = 0.0

    def __post_init__(self) -> None:
        value = _real("Yogi.initial_accumulator", self.initial_accumulator)
        if not value >= 0.0:
            raise ValueError(f"Yogi.initial_accumulator must be >= 0, got {value!r}")
        object.__setattr__(self, "initial_accumulator", value)

    def second_moment(self, s: Any, g: Any, config: Any, *, xp: Any) -> Any:  # noqa: D102
        return yogi_second_moment(s, g, config.beta2, xp=xp)


SPECS: dict[str, type[Variant]] = {cls.name: cls for cls in (AMSGrad, AdaMax, NAdam, RAdam, Yogi)}
"""The variants by name (``AdamConfig(variant="nadam")`` is ``AdamConfig(variant=NAdam())``)."""

PLAIN = Variant()
"""Plain Adam's rule: the base pieces (``AdamConfig.variant`` is None)."""


def ema(m: Any, x: Any, beta: float) -> Any:
    r"""The moment update :math:`\beta m + (1-\beta) x` (arrays or floats), shared by Adam and every variant.

    Examples
    --------
    >>> ema(1.0, 3.0, 0.5)
    2.0
    """
    return beta * m + (1.0 - beta) * x


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


def nadam_coefficients(beta1: float, options: NAdam, step: int, mu_product: float) -> tuple[float, float, float]:
    r"""NAdam's Nesterov combination :math:`\hat v_t = c_v v_t + c_g g_t` at step ``step``.

    .. math::

        \Pi_t = \Pi_{t-1}\mu_t,\qquad c_g = \frac{1-\mu_t}{1-\Pi_t},\qquad
        c_v = \frac{\mu_{t+1}}{1 - \Pi_t\,\mu_{t+1}}

    With ``schedule="constant"`` (:math:`\mu_t = \beta_1`, :math:`\Pi_t = \beta_1^t`) this is
    optax's ``nesterov=True``: :math:`\beta_1 v/(1-\beta_1^{t+1}) + (1-\beta_1) g/(1-\beta_1^t)`.

    Parameters
    ----------
    beta1 : float
    options : NAdam
        ``schedule``, ``momentum_decay`` and ``mu_product_dtype``.
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
    >>> prod, c_g, c_v = nadam_coefficients(0.9, NAdam(schedule="constant"), 1, 1.0)
    >>> round(c_g, 12), round(c_v, 12)
    (1.0, 4.736842105263)
    """
    if options.schedule == "constant":
        return mu_product, (1.0 - beta1) / (1.0 - beta1**step), beta1 / (1.0 - beta1 ** (step + 1))
    mu = nadam_mu(beta1, step, options.momentum_decay)
    mu_next = nadam_mu(beta1, step + 1, options.momentum_decay)
    if options.mu_product_dtype == "float32":  # torch: a float32 tensor times mu cast to float32
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
