r"""Framework presets: configs that reproduce torch, optax, Keras 3 and D2L arithmetic.

``presets.torch("nadam")`` is the :class:`~adam_np.AdamConfig` whose :func:`adam_np.update` follows
``torch.optim.NAdam``'s formulas with torch's defaults: where ε sits, where bias correction
applies, default ε/λ/η, which AMSGrad maximum, NAdam's μ schedule and the float32 μ-product.
Any :class:`~adam_np.AdamConfig` field, or an option of the preset's variant (``momentum_decay`` of
:class:`~adam_np.variants.NAdam`...), passed as a keyword overrides the framework default.
In float64 each preset matches the framework to ≤ 1e-12 normwise relative error
(max|Δx|/max|x_ref|) over 1000 random steps (``adam-np crosscheck``; tests/test_presets_*.py).

Where the frameworks differ (defaults, and the formula each uses):

=========  ==========================  =========================  ==========================  ===================
variant    torch 2.13                  optax 0.2.8                Keras 3                     D2L
=========  ==========================  =========================  ==========================  ===================
adam       ε outside, 1e-8             ε outside, 1e-8            ``eps_hat``, ε̂ = 1e-7        ε outside, 1e-6, η 0.01
amsgrad    max over raw s              max over corrected ŝ       max over raw v, ``eps_hat``  —
adamw      (1−ηλ)x first, λ = 1e-2     x − η(u + λx), λ = 1e-4    x − ηλx first, λ = 4e-3       —
adamax     max(β₂u, |g|+ε), η 2e-3     max(β₂u, |g|+ε)            v/(u+ε), ε 1e-7              —
nadam      μ_t: ψ = 4e-3, Πμ float32   μ_t = β₁ (``nesterov``)    μ_t: 0.96^t (ψ = 1)          —
radam      ``eps_hat``, ρ_t > 5        ε outside, ρ_t ≥ 5         —                           —
yogi       —                           ε 1e-3, moments from 1e-6  —                           ε 1e-3, from 0, η 0.01
=========  ==========================  =========================  ==========================  ===================

Keras 3 is not a dependency: the Keras preset is implemented from Keras' formulas and tested
against a pure-Python transcription of them (tests/test_presets.py), not against Keras itself.
How much the conventions differ in float32 (measured): see docs/presets.md.

Examples
--------
>>> from adam_np.verify import presets
>>> presets.torch("radam").eps_mode, presets.optax("radam").eps_mode
('hat', 'outside')
>>> presets.keras().eps
1e-07
>>> presets.optax("yogi").variant
Yogi(initial_accumulator=1e-06)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..core.config import AdamConfig
from ..core.rules import AdaMax, AMSGrad, NAdam, RAdam, Yogi

__all__ = ["FRAMEWORKS", "d2l", "keras", "optax", "supported", "torch"]

_TORCH = {
    "adam": {"variant": None},
    "amsgrad": {"variant": AMSGrad(max="raw")},
    "adamw": {"weight_decay": 1e-2, "weight_decay_mode": "decoupled"},
    "adamax": {"variant": AdaMax(), "lr": 2e-3, "eps_mode": "root"},
    "nadam": {"variant": NAdam(schedule="decay", momentum_decay=4e-3, mu_product_dtype="float32"), "lr": 2e-3},
    "radam": {"variant": RAdam(), "eps_mode": "hat"},
}
_OPTAX = {
    "adam": {"variant": None},
    "amsgrad": {"variant": AMSGrad(max="corrected")},
    "adamw": {"weight_decay": 1e-4, "weight_decay_mode": "decoupled_add"},
    "adamax": {"variant": AdaMax(), "eps_mode": "root"},
    "nadam": {"variant": NAdam(schedule="constant")},
    "radam": {"variant": RAdam(), "eps_mode": "outside"},
    "yogi": {"variant": Yogi(initial_accumulator=1e-6), "eps": 1e-3},
}
_KERAS = {
    "adam": {"variant": None, "eps": 1e-7, "eps_mode": "hat"},
    "amsgrad": {"variant": AMSGrad(max="raw"), "eps": 1e-7, "eps_mode": "hat"},
    "adamw": {"eps": 1e-7, "eps_mode": "hat", "weight_decay": 4e-3, "weight_decay_mode": "decoupled"},
    "adamax": {"variant": AdaMax(), "eps": 1e-7, "eps_mode": "outside"},
    "nadam": {"variant": NAdam(schedule="decay", momentum_decay=1.0), "eps": 1e-7},
}
_D2L = {
    "adam": {"variant": None, "lr": 0.01, "eps": 1e-6},
    "yogi": {"variant": Yogi(), "lr": 0.01, "eps": 1e-3},
}

FRAMEWORKS = {"torch": _TORCH, "optax": _OPTAX, "keras": _KERAS, "d2l": _D2L}
"""Each framework's variants and the :class:`~adam_np.AdamConfig` fields that reproduce them."""


def supported(framework: str) -> tuple[str, ...]:
    """The variants a framework has (and its preset reproduces).

    Parameters
    ----------
    framework : {"torch", "optax", "keras", "d2l"}

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> supported("d2l")
    ('adam', 'yogi')
    """
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {tuple(FRAMEWORKS)}, got {framework!r}")
    return tuple(FRAMEWORKS[framework])


def _preset(framework: str, variant: str, options: dict) -> AdamConfig:
    table = FRAMEWORKS[framework]
    if variant not in table:
        raise ValueError(f"variant must be one of {tuple(table)} for {framework}, got {variant!r}")
    fields = dict(table[variant])
    rule = fields.get("variant")
    own = {k: options.pop(k) for k in list(options) if rule is not None and k in rule.__dataclass_fields__}
    if own:  # the variant's own options (e.g. torch("nadam", momentum_decay=0.02)) go into its options object
        fields["variant"] = dataclasses.replace(rule, **own)
    return AdamConfig(**{**fields, **options})


def torch(variant: str = "adam", **options: Any) -> AdamConfig:
    r"""``torch.optim`` (2.13, single-tensor CPU path) as a config.

    ``adam`` / ``amsgrad`` / ``adamw``: ``Adam``, ``Adam(amsgrad=True)``, ``AdamW`` —
    :math:`x \mathrel{-}= \frac{\eta}{1-\beta_1^t} v/(\sqrt{s}/\sqrt{1-\beta_2^t} + \epsilon)`, AMSGrad's
    maximum over the raw :math:`s`, AdamW's :math:`x \leftarrow (1-\eta\lambda)x` first (λ = 1e-2).
    ``adamax``: ε inside the max, η = 2e-3. ``nadam``: μ schedule with ψ = 4e-3 and the μ-product
    kept in float32, η = 2e-3. ``radam``: :math:`\sqrt{1-\beta_2^t}/(\sqrt{s}+\epsilon)` (``eps_hat``).

    Parameters
    ----------
    variant : {"adam", "amsgrad", "adamw", "adamax", "nadam", "radam"}, default "adam"
    **options
        :class:`~adam_np.AdamConfig` fields overriding torch's defaults (``lr``, ``weight_decay``,
        ``weight_decay_mode="decoupled"`` for ``NAdam``/``RAdam(decoupled_weight_decay=True)``...).

    Returns
    -------
    AdamConfig

    Examples
    --------
    >>> c = torch("nadam"); c.lr, c.variant.mu_product_dtype
    (0.002, 'float32')
    """
    return _preset("torch", variant, options)


def optax(variant: str = "adam", **options: Any) -> AdamConfig:
    r"""optax (0.2.8) aliases as a config; η defaults to 1e-3 (optax has no default).

    ``adam``: :math:`\hat v/(\sqrt{\hat s + \epsilon_{root}} + \epsilon)`. ``amsgrad``: maximum over
    the corrected :math:`\hat s`. ``adamw``: :math:`x - \eta(u + \lambda x)`, λ = 1e-4. ``nadam``:
    ``nesterov=True``, :math:`\mu_t = \beta_1`. ``radam``: ε outside. ``yogi``: ε = 1e-3, moments
    start at 1e-6 (pass the config to :func:`adam_np.init`). ``adamax``: ε inside the max.

    Parameters
    ----------
    variant : {"adam", "amsgrad", "adamw", "adamax", "nadam", "radam", "yogi"}, default "adam"
    **options
        :class:`~adam_np.AdamConfig` fields (``eps_root``...).

    Returns
    -------
    AdamConfig

    Examples
    --------
    >>> optax("amsgrad").variant
    AMSGrad(max='corrected')
    """
    return _preset("optax", variant, options)


def keras(variant: str = "adam", **options: Any) -> AdamConfig:
    r"""Keras 3 optimizers as a config, from Keras' formulas (Keras is not installed or needed).

    ``adam``: step :math:`t` = iterations + 1, :math:`\alpha = \eta\sqrt{1-\beta_2^t}/(1-\beta_1^t)`,
    :math:`x \mathrel{-}= \alpha\,m/(\sqrt{v} + \hat\epsilon)`, ε̂ = 1e-7 (``eps_hat``). ``amsgrad``: raw
    maximum. ``adamw``: :math:`x \mathrel{-}= \eta\lambda x` first, λ = 4e-3. ``adamax``:
    :math:`u = \max(\beta_2 u, |g|)`, :math:`x \mathrel{-}= \eta m/((1-\beta_1^t)(u + \epsilon))`. ``nadam``:
    :math:`\mu_t = \beta_1(1 - \tfrac12 0.96^t)` (ψ = 1), ε outside.

    Parameters
    ----------
    variant : {"adam", "amsgrad", "adamw", "adamax", "nadam"}, default "adam"
    **options
        :class:`~adam_np.AdamConfig` fields.

    Returns
    -------
    AdamConfig

    Examples
    --------
    >>> keras("adamax").eps_mode
    'outside'
    """
    return _preset("keras", variant, options)


def d2l(variant: str = "adam", **options: Any) -> AdamConfig:
    r"""The D2L book's scratch code (sections 12.10, chapter 7.8 here) as a config.

    ``adam``: :math:`x \mathrel{-}= \eta\,\hat v/(\sqrt{\hat s} + \epsilon)`, η = 0.01, ε = 1e-6.
    ``yogi``: :math:`s \mathrel{+}= (1-\beta_2)\,\mathrm{sign}(g^2 - s)\,g^2`, ε = 1e-3, moments from 0.

    Parameters
    ----------
    variant : {"adam", "yogi"}, default "adam"
    **options
        :class:`~adam_np.AdamConfig` fields.

    Returns
    -------
    AdamConfig

    Examples
    --------
    >>> d2l().eps, d2l().lr
    (1e-06, 0.01)
    """
    return _preset("d2l", variant, options)

