r"""Adam's hyper-parameters: one frozen dataclass, validated on construction.

A plain :class:`AdamConfig` holds what Algorithm 1 has (η, β1, β2, ε) and the few switches every
framework puts around it: where ε goes, weight decay, ``maximize``, the non-finite policy. A variant
(AMSGrad, AdaMax, NAdam, RAdam, Yogi) is one ``variant=`` object that carries its own options
(:mod:`adam_np.core.rules`); :mod:`adam_np.variants` builds such configs by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from . import rules
from ._checks import _check_lr, _real

__all__ = ["EPS_MODES", "NONFINITE_POLICIES", "VARIANTS", "WEIGHT_DECAY_MODES", "AdamConfig"]

EPS_MODES = ("outside", "root", "hat")
"""Where ε enters the update: ``"outside"`` (book, torch), ``"root"`` (optax ``eps_root``),
``"hat"`` (paper end of §2, Keras, Chainer)."""

NONFINITE_POLICIES = ("raise", "skip", "propagate")
"""What a non-finite gradient, or a step that would make the state non-finite, does: raise an error, skip the
whole step, or propagate (torch)."""

VARIANTS = ("adam", *rules.SPECS)
"""The update rules on the shared core (AdamW is ``weight_decay_mode="decoupled"`` on any of them)."""

WEIGHT_DECAY_MODES = ("l2", "decoupled", "decoupled_add")
"""``"l2"``: :math:`g \\leftarrow g + \\lambda x` (torch ``Adam``); ``"decoupled"``:
:math:`x \\leftarrow (1 - \\eta\\lambda) x` before the moments (torch ``AdamW``, Loshchilov & Hutter);
``"decoupled_add"``: :math:`x \\leftarrow x - \\eta(u + \\lambda x)`, :math:`u` the Adam direction (optax)."""

LearningRate = float | Callable[[int], float]

def _variant(value: Any) -> rules.Variant | None:
    """``variant`` as an options object (None for plain Adam): a name, a dict from ``to_dict`` or an object."""
    if value is None or value == "adam":
        return None
    if isinstance(value, rules.Variant):
        return value
    if isinstance(value, str) and value in rules.SPECS:
        return rules.SPECS[value]()
    if isinstance(value, dict) and value.get("name") in rules.SPECS:
        options = {k: v for k, v in value.items() if k != "name"}
        return rules.SPECS[value["name"]](**options)
    raise ValueError(f"variant must be one of {VARIANTS} or an options object such as adam_np.variants.AMSGrad(), "
                     f"got {value!r}")


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
        :math:`\epsilon > 0`, placed as ``eps_mode`` says. 0 only with ``eps_root > 0``: otherwise a
        coordinate whose gradients were all 0 has the denominator 0 and its step 0/0 = NaN, so ``eps=0``
        is refused (as AdaMax always refuses it).
    eps_mode : {"outside", "root", "hat"}, default "outside"
        ``"outside"``: :math:`x \mathrel{-}= \eta \hat v/(\sqrt{\hat s} + \epsilon)` (book, torch, optax ``eps``);
        ``"root"``: :math:`x \mathrel{-}= \eta \hat v/\sqrt{\hat s + \epsilon}` (optax ``eps_root``);
        ``"hat"``: :math:`x \mathrel{-}= \alpha_t v/(\sqrt{s} + \hat\epsilon)` with
        :math:`\alpha_t = \eta\sqrt{1-\beta_2^t}/(1-\beta_1^t)` (paper §2, Keras, Chainer).
    weight_decay : float, default 0.0
        :math:`\lambda \ge 0`, applied as ``weight_decay_mode`` says.
    maximize : bool, default False
        Ascend instead of descend: :math:`g \leftarrow -g` first (torch ``maximize``).
    nonfinite : {"raise", "skip", "propagate"}, default "raise"
        A gradient holding NaN or ±inf, or a step that would make a new parameter or moment NaN or
        ±inf (an overflow, e.g. :math:`g^2` beyond float16's 65504): raise :class:`FloatingPointError`
        and change nothing; skip the whole step (the step counter does not advance, ``state.skipped``
        counts it); or compute with it as torch does (once :math:`s` is inf the parameter stops moving).
    variant : str or variant object, optional
        None or ``"adam"`` for Algorithm 1; else the rule with its options: an object of
        :mod:`adam_np.variants` (``AMSGrad(max="corrected")``, ``NAdam(schedule="constant")``...) or
        its name (``"amsgrad"``: the object with default options).
    weight_decay_mode : {"l2", "decoupled", "decoupled_add"}, default "l2"
        ``"l2"``: :math:`g \leftarrow g + \lambda x` before the moments (torch ``Adam``); ``"decoupled"``
        (AdamW): :math:`x \leftarrow (1 - \eta_t\lambda)\,x` before the moments, as torch ``AdamW`` does;
        ``"decoupled_add"``: :math:`x \leftarrow x - \eta_t(u + \lambda x)` with :math:`u` the Adam
        direction, as optax ``adamw`` does (equal in exact arithmetic, not in float32).
    eps_root : float, default 0.0
        :math:`\epsilon_{root} \ge 0` added under the square root, on top of ``eps`` (optax ``eps_root``):
        :math:`\hat v/(\sqrt{\hat s + \epsilon_{root}} + \epsilon)`.

    Raises
    ------
    TypeError, ValueError
        Naming the field and the value when a hyper-parameter is out of range.

    Examples
    --------
    >>> AdamConfig(lr=0.01, eps=1e-6)  # doctest: +ELLIPSIS
    AdamConfig(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-06, eps_mode='outside', weight_decay=0.0, maximize=False, ...)
    >>> AdamConfig(variant="nadam").variant
    NAdam(schedule='decay', momentum_decay=0.004, mu_product_dtype='float64')
    >>> AdamConfig().is_plain_adam, AdamConfig(variant="amsgrad").is_plain_adam
    (True, False)
    >>> AdamConfig(beta1=1.0)
    Traceback (most recent call last):
    ...
    ValueError: beta1 must be in [0, 1), got 1.0
    >>> AdamConfig(eps=0.0)
    Traceback (most recent call last):
    ...
    ValueError: eps must be > 0, got 0.0: where every gradient so far was 0 the denominator sqrt(s_hat) + eps ...
    """

    lr: LearningRate = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    eps_mode: str = "outside"
    weight_decay: float = 0.0
    maximize: bool = False
    nonfinite: str = "raise"
    variant: Any = None
    weight_decay_mode: str = "l2"
    eps_root: float = 0.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not callable(self.lr):
            set_(self, "lr", _check_lr(self.lr))
        for name in ("beta1", "beta2"):
            value = _real(name, getattr(self, name))
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
            set_(self, name, value)
        for name in ("eps", "weight_decay", "eps_root"):
            value = _real(name, getattr(self, name))
            if not value >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
            set_(self, name, value)
        for name, allowed in (("eps_mode", EPS_MODES), ("nonfinite", NONFINITE_POLICIES),
                              ("weight_decay_mode", WEIGHT_DECAY_MODES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not isinstance(self.maximize, bool):
            raise TypeError(f"maximize must be a bool, got {type(self.maximize).__name__}: {self.maximize!r}")
        set_(self, "variant", _variant(self.variant))
        if self.eps_root and self.eps_mode == "hat":
            raise ValueError(f"eps_root={self.eps_root!r} cannot be combined with eps_mode='hat' (which works on the "
                             "raw s, so eps_root would not sit under s_hat); use eps_mode='outside' with eps_root")
        if self.variant is not None:
            self.variant.check(self)
        if self.eps == 0.0 and self.eps_root == 0.0:
            raise ValueError("eps must be > 0, got 0.0: where every gradient so far was 0 the denominator "
                             "sqrt(s_hat) + eps is 0 and the step 0/0 is NaN; use a small eps such as 1e-8 "
                             "(or eps_root > 0 to put it under the root)")

    @property
    def variant_name(self) -> str:
        """The rule's name: ``"adam"`` for Algorithm 1, else the variant's (``"amsgrad"``, ``"nadam"``...).

        Returns
        -------
        str

        Examples
        --------
        >>> AdamConfig().variant_name, AdamConfig(variant="yogi").variant_name
        ('adam', 'yogi')
        """
        return "adam" if self.variant is None else self.variant.name

    @property
    def is_plain_adam(self) -> bool:
        """Whether this is Algorithm 1 itself (with optional ``maximize`` and L2 ``weight_decay``).

        The in-place kernels implement exactly this case; every variant goes through :func:`adam_np.update`.

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
        return self.variant is None and (self.weight_decay_mode == "l2" or not self.weight_decay) \
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
        """The fields as a plain, JSON-friendly dict (a schedule ``lr`` stays the callable).

        ``variant`` becomes None or the variant's :meth:`~adam_np.core.rules.Variant.to_dict`;
        :meth:`from_dict` reads it back.

        Returns
        -------
        dict

        Examples
        --------
        >>> d = AdamConfig(variant="amsgrad").to_dict()
        >>> d["beta2"], d["variant"]
        (0.999, {'name': 'amsgrad', 'max': 'raw'})
        """
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["variant"] = None if self.variant is None else self.variant.to_dict()
        return out

    @classmethod
    def from_dict(cls, values: dict) -> AdamConfig:
        """The config of :meth:`to_dict`'s dict.

        Parameters
        ----------
        values : dict
            A ``fold_bias_correction`` key (files written before it became an argument of
            :class:`adam_np.Adam`) is ignored: it changes the rounding, not the math.

        Returns
        -------
        AdamConfig

        Raises
        ------
        TypeError, ValueError
            Naming the field, on unknown fields or values out of range.

        Examples
        --------
        >>> AdamConfig.from_dict(AdamConfig(lr=0.1).to_dict()) == AdamConfig(lr=0.1)
        True
        """
        if not isinstance(values, dict):
            raise TypeError(f"config must be a dict, got {type(values).__name__}")
        values = {k: v for k, v in values.items() if k != "fold_bias_correction"}
        return cls(**values)
