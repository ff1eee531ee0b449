"""What the kernels share: which configs they cover, and the per-step coefficients.

The kernels do the arithmetic of :func:`adam_np.core.adam._adam_leaf` in place. They cover the
plain Adam of :class:`adam_np.AdamConfig`; :func:`unsupported_fields` says which fields of a
config they do not cover, so that a config they do not know (a variant added later, a new
field set away from its default) falls back to the pure :func:`adam_np.update`.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, NamedTuple

from ..core.adam import EPS_MODES, AdamConfig, _folded_eps, _folded_step_size, bias_corrections

__all__ = ["KERNEL_FIELDS", "Coefficients", "Constants", "coefficients", "constants", "step_scalars", "supports",
           "unsupported_fields"]

KERNEL_FIELDS: dict[str, Any] = {
    "lr": None,  # any value (a schedule is evaluated in Python, once per step)
    "beta1": None,
    "beta2": None,
    "eps": None,
    "eps_mode": frozenset(EPS_MODES),
    "weight_decay": None,
    "maximize": frozenset({False, True}),
    "nonfinite": None,  # handled by the caller before the kernel runs
    "fold_bias_correction": None,
}
"""The :class:`AdamConfig` fields a kernel implements, with the values it accepts (None: any valid value).

Any other field must sit at its declared default, else :func:`unsupported_fields` names it."""

_MODE = {"outside": 0, "root": 1, "hat": 2}
_FOLDED_MODE = {"outside": 2, "root": 3}  # fold_bias_correction: hat's form with the step's eps, or under the root


def unsupported_fields(config: Any) -> list[str]:
    """Names of the fields of ``config`` that the kernels do not implement (empty: kernel-eligible).

    Parameters
    ----------
    config : AdamConfig
        A configuration; subclasses (variants) and unknown fields count as unsupported.

    Returns
    -------
    list of str
        ``"type"`` if ``config`` is not exactly :class:`AdamConfig`, ``"is_plain_adam"`` if the
        config says it is not Algorithm 1, then every field whose value is outside
        :data:`KERNEL_FIELDS` or, for a field the kernels do not know (``variant``,
        ``weight_decay_mode``, ``eps_root``...), away from its default.

    Examples
    --------
    >>> unsupported_fields(AdamConfig(eps_mode="hat", maximize=True))
    []
    >>> unsupported_fields(AdamConfig(variant="amsgrad"))
    ['is_plain_adam', 'variant']
    """
    bad = [] if type(config) is AdamConfig else ["type"]
    if not getattr(config, "is_plain_adam", True):  # the core's own statement of what a kernel may run
        bad.append("is_plain_adam")
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name in KERNEL_FIELDS:
            allowed = KERNEL_FIELDS[f.name]
            if allowed is not None and value not in allowed:
                bad.append(f.name)
        elif value != f.default:
            bad.append(f.name)
    return bad


def supports(config: Any) -> bool:
    """Whether the in-place kernels compute exactly what :func:`adam_np.update` computes for ``config``.

    Parameters
    ----------
    config : AdamConfig

    Returns
    -------
    bool

    Examples
    --------
    >>> supports(AdamConfig())
    True
    """
    return not unsupported_fields(config)


class Constants(NamedTuple):
    r"""The coefficients that stay fixed for a config, as :func:`adam_np.core.adam._adam_leaf` forms them.

    ``one_minus_beta1`` is :math:`1-\beta_1` rounded in float64 (the kernels then round it to the
    array dtype, as NumPy rounds a Python float); ``mode`` is 0, 1, 2 for ``eps_mode``
    ``"outside"``, ``"root"``, ``"hat"``, and 2, 3 for ``"outside"``, ``"root"`` with
    ``fold_bias_correction`` (mode 2: :math:`x - \alpha_t v/(\sqrt{s} + \epsilon_t)`, mode 3:
    :math:`x - \alpha_t v/\sqrt{s + \epsilon_t}`, :math:`\epsilon_t` the step's ε of :class:`Coefficients`).
    """

    mode: int
    maximize: bool
    weight_decay: float
    beta1: float
    one_minus_beta1: float
    beta2: float
    one_minus_beta2: float
    eps: float


class Coefficients(NamedTuple):
    r"""Everything a kernel needs for one step: the :class:`Constants` and the step's scalars.

    ``bc1, bc2`` are :math:`1-\beta_1^t, 1-\beta_2^t` (:func:`adam_np.bias_corrections`),
    ``alpha`` is :math:`\eta_t\sqrt{1-\beta_2^t}/(1-\beta_1^t)` (used by modes 2 and 3 only), ``eps``
    the step's ε: the config's, or rescaled by ``fold_bias_correction`` (:func:`adam_np.core.adam._folded_eps`).
    """

    constants: Constants
    lr: float
    bc1: float
    bc2: float
    alpha: float
    eps: float

    def floats(self) -> tuple[float, ...]:
        """The floating coefficients ``(weight_decay, beta1, 1-beta1, beta2, 1-beta2, lr, bc1, bc2, alpha, eps)``.

        Returns
        -------
        tuple of float

        Examples
        --------
        >>> coefficients(AdamConfig(), 1e-3, 1).floats()[5:8]
        (0.001, 0.09999999999999998, 0.0010000000000000009)
        """
        k = self.constants
        return (k.weight_decay, k.beta1, k.one_minus_beta1, k.beta2, k.one_minus_beta2,
                self.lr, self.bc1, self.bc2, self.alpha, self.eps)


def constants(config: AdamConfig) -> Constants:
    """The step-independent coefficients of ``config``.

    Parameters
    ----------
    config : AdamConfig

    Returns
    -------
    Constants

    Examples
    --------
    >>> constants(AdamConfig()).one_minus_beta1
    0.09999999999999998
    """
    beta1, beta2 = config.beta1, config.beta2
    mode = (_FOLDED_MODE if config.fold_bias_correction else _MODE)[config.eps_mode]
    return Constants(mode, config.maximize, config.weight_decay, beta1, 1.0 - beta1,
                     beta2, 1.0 - beta2, config.eps)


def coefficients(config: AdamConfig, lr: float, step: int, consts: Constants | None = None) -> Coefficients:
    r"""The coefficients of step ``step`` (t ≥ 1) with learning rate ``lr`` (already evaluated).

    Parameters
    ----------
    config : AdamConfig
    lr : float
        :math:`\eta_t`, e.g. ``config.lr_at(step)``.
    step : int
        The step :math:`t` being taken.
    consts : Constants, optional
        ``constants(config)``, if already at hand.

    Returns
    -------
    Coefficients

    Examples
    --------
    >>> c = coefficients(AdamConfig(), 0.1, 1)
    >>> c.bc1, c.constants.one_minus_beta2
    (0.09999999999999998, 0.0010000000000000009)
    """
    consts = constants(config) if consts is None else consts
    return Coefficients(consts, *step_scalars(config, lr, step, consts))


def step_scalars(config: AdamConfig, lr: float, step: int, consts: Constants) -> tuple[float, ...]:
    r"""The step's scalars ``(lr, bc1, bc2, alpha, eps)`` of :class:`Coefficients`, without building one.

    Parameters
    ----------
    config : AdamConfig
    lr : float
        :math:`\eta_t`.
    step : int
        The step :math:`t \ge 1`.
    consts : Constants
        ``constants(config)``.

    Returns
    -------
    tuple of float

    Examples
    --------
    >>> step_scalars(AdamConfig(), 0.1, 1, constants(AdamConfig()))[1:3]
    (0.09999999999999998, 0.0010000000000000009)
    """
    bc1, bc2 = bias_corrections(consts.beta1, consts.beta2, step)
    if consts.mode >= 2:
        return lr, bc1, bc2, _folded_step_size(lr, bc1, bc2), _folded_eps(config, bc2)
    return lr, bc1, bc2, 0.0, consts.eps
