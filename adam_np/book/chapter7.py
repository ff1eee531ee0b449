r"""The optimizers of D2L chapter 7 as update rules on any ``xp``, with the book's hyper-parameters.

Every rule has the same small interface, so :func:`adam_np.book.train.train_ch7` drives any of them:

``rule.init(params) -> state`` and ``rule.update(grads, state, params) -> (new_params, new_state)``,

pure functions that never mutate their inputs (``params`` and ``grads`` are lists of arrays). For a
gradient :math:`g_t` of parameter :math:`x`:

========== ====================================================================================== ==================
rule       update (book notation)                                                                 book defaults
========== ====================================================================================== ==================
SGD        :math:`x \leftarrow x - \eta g`                                                         η = 0.05
Momentum   :math:`v \leftarrow \beta v + g,\ x \leftarrow x - \eta v`                              η = 0.02, β = 0.5
AdaGrad    :math:`s \leftarrow s + g^2,\ x \leftarrow x - \eta g/\sqrt{s + \epsilon}`              η = 0.1, ε = 1e-6
RMSProp    :math:`s \leftarrow \gamma s + (1-\gamma) g^2,\ x \leftarrow x - \eta g/\sqrt{s+\epsilon}` η = 0.01, γ = 0.9, ε = 1e-6
AdaDelta   :math:`s \leftarrow \rho s + (1-\rho) g^2,\ g' = \sqrt{\Delta+\epsilon}/\sqrt{s+\epsilon}\,g,`
           :math:`x \leftarrow x - g',\ \Delta \leftarrow \rho\Delta + (1-\rho) g'^2`              ρ = 0.9, ε = 1e-5
Adam       :func:`adam_np.update` (Algorithm 1 with bias correction)                               η = 0.01, ε = 1e-6
========== ====================================================================================== ==================

(SGD's η is the book's choice for mini-batches of 10 on the airfoil data.)
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from ..core import adam as _adam
from ..core._checks import _check_lr, _real
from ..core._xp import array_namespace, is_real_floating

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "AdaDelta",
    "AdaGrad",
    "AdamRule",
    "Momentum",
    "RMSProp",
    "SlotState",
    "make_optimizer",
]


class SlotState(NamedTuple):
    """State of a chapter-7 rule: the step count and named per-parameter buffers.

    Attributes
    ----------
    step : int
        Updates taken so far.
    slots : dict of str to list of array
        E.g. ``{"v": [...]}`` for momentum, ``{"s": [...], "delta": [...]}`` for AdaDelta.

    Examples
    --------
    >>> import numpy as np
    >>> AdaDelta().init([np.ones(2)])
    SlotState(step=0, slots={'s': [array([0., 0.])], 'delta': [array([0., 0.])]})
    """

    step: int
    slots: dict


def _positive(name: str, value: Any) -> float:
    return _check_lr(value, name=name)


def _nonneg(name: str, value: Any) -> float:
    value = _real(name, value)
    if not value >= 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def _decay(name: str, value: Any) -> float:
    value = _real(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def _leaves(grads: Any, params: Any) -> Any:
    """Check ``grads`` against ``params`` (lists of arrays); return the namespace."""
    for name, seq in (("params", params), ("grads", grads)):
        if not isinstance(seq, (list, tuple)) or not seq:
            raise TypeError(f"{name} must be a non-empty list of arrays, got {type(seq).__name__}")
    if len(grads) != len(params):
        raise ValueError(f"grads has {len(grads)} arrays, expected {len(params)} to match params")
    xp = array_namespace(*params, *grads, name="params and grads")
    for i, (x, g) in enumerate(zip(params, grads)):
        if not is_real_floating(x, xp):
            raise TypeError(f"params[{i}] must have a real floating dtype, got {x.dtype}")
        if tuple(g.shape) != tuple(x.shape) or g.dtype != x.dtype:
            raise ValueError(f"grads[{i}] has shape {tuple(g.shape)} and dtype {g.dtype}, "
                             f"expected {tuple(x.shape)} and {x.dtype} as params[{i}]")
    return xp


def _check_slots(state: SlotState, params: list) -> None:
    """Every slot list matches ``params`` in length, and each slot its parameter in shape and dtype."""
    for k, seq in state.slots.items():
        if not isinstance(seq, (list, tuple)) or len(seq) != len(params):
            got = f"{len(seq)} arrays" if isinstance(seq, (list, tuple)) else type(seq).__name__
            raise ValueError(f"state.slots[{k!r}] has {got}, expected a list of {len(params)} to match params")
        for i, (a, x) in enumerate(zip(seq, params)):
            if tuple(getattr(a, "shape", ())) != tuple(x.shape):
                raise ValueError(f"state.slots[{k!r}][{i}] has shape {tuple(getattr(a, 'shape', ()))}, "
                                 f"expected {tuple(x.shape)} as params[{i}]")
            if getattr(a, "dtype", None) != x.dtype:
                raise TypeError(f"state.slots[{k!r}][{i}] has dtype {getattr(a, 'dtype', None)}, "
                                f"expected {x.dtype} as params[{i}]")


class _Rule:
    """Shared init/update plumbing: subclasses name their slots and write one ``_leaf`` step."""

    name = ""
    slot_names: tuple = ()

    def init(self, params: list) -> SlotState:
        """Zero buffers shaped like ``params``, step 0.

        Parameters
        ----------
        params : list of array

        Returns
        -------
        SlotState
        """
        xp = _leaves(params, params)
        return SlotState(0, {k: [xp.zeros_like(x) for x in params] for k in self.slot_names})

    def update(self, grads: list, state: SlotState, params: list) -> tuple[list, SlotState]:
        """One step: new parameters and new state; inputs are not mutated.

        Parameters
        ----------
        grads : list of array
            One gradient per parameter (same shape and dtype).
        state : SlotState
            From :meth:`init` or the previous :meth:`update`.
        params : list of array

        Returns
        -------
        new_params : list of array
        new_state : SlotState
        """
        xp = _leaves(grads, params)
        if not isinstance(state, SlotState) or set(state.slots) != set(self.slot_names):
            raise TypeError(f"state must be a SlotState with slots {self.slot_names} (from {self.name}.init)")
        _check_slots(state, params)
        new_params, new_slots = [], {k: [] for k in self.slot_names}
        for i, (x, g) in enumerate(zip(params, grads)):
            x, slots = self._leaf(x, g, {k: state.slots[k][i] for k in self.slot_names}, xp=xp)
            new_params.append(x)
            for k in self.slot_names:
                new_slots[k].append(slots[k])
        return new_params, SlotState(state.step + 1, new_slots)

    def hyperparams(self) -> dict:
        """The hyper-parameters as a dict (for printing and JSON).

        Returns
        -------
        dict
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class SGD(_Rule):
    r"""Mini-batch SGD, :math:`x \leftarrow x - \eta g`.

    Parameters
    ----------
    lr : float, default 0.05
        :math:`\eta > 0`.

    Examples
    --------
    >>> import numpy as np
    >>> rule = SGD(lr=0.1)
    >>> x = [np.array([1.0])]
    >>> x, state = rule.update([np.array([2.0])], rule.init(x), x)
    >>> x
    [array([0.8])]
    """

    lr: float = 0.05
    name = "sgd"
    slot_names = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", _positive("lr", self.lr))

    def _leaf(self, x, g, slots, *, xp):
        return x - self.lr * g, slots


@dataclass(frozen=True)
class Momentum(_Rule):
    r"""SGD with momentum (D2L scratch form), :math:`v \leftarrow \beta v + g,\ x \leftarrow x - \eta v`.

    Parameters
    ----------
    lr : float, default 0.02
        :math:`\eta > 0`.
    momentum : float, default 0.5
        :math:`\beta \in [0, 1)`.

    Examples
    --------
    >>> import numpy as np
    >>> rule = Momentum(lr=0.1, momentum=0.5)
    >>> x = [np.array([1.0])]
    >>> state = rule.init(x)
    >>> for _ in range(2):
    ...     x, state = rule.update([np.array([1.0])], state, x)
    >>> x, state.slots["v"]
    ([array([0.75])], [array([1.5])])
    """

    lr: float = 0.02
    momentum: float = 0.5
    name = "momentum"
    slot_names = ("v",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", _positive("lr", self.lr))
        object.__setattr__(self, "momentum", _decay("momentum", self.momentum))

    def _leaf(self, x, g, slots, *, xp):
        v = self.momentum * slots["v"] + g
        return x - self.lr * v, {"v": v}


@dataclass(frozen=True)
class AdaGrad(_Rule):
    r"""AdaGrad, :math:`s \leftarrow s + g^2,\ x \leftarrow x - \eta g / \sqrt{s + \epsilon}`.

    Parameters
    ----------
    lr : float, default 0.1
        :math:`\eta > 0`.
    eps : float, default 1e-6
        :math:`\epsilon \ge 0` (inside the root, as the book).

    Examples
    --------
    >>> import numpy as np
    >>> rule = AdaGrad(lr=0.1, eps=0.0)
    >>> x = [np.array([1.0])]
    >>> x, state = rule.update([np.array([2.0])], rule.init(x), x)
    >>> x
    [array([0.9])]
    """

    lr: float = 0.1
    eps: float = 1e-6
    name = "adagrad"
    slot_names = ("s",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", _positive("lr", self.lr))
        object.__setattr__(self, "eps", _nonneg("eps", self.eps))

    def _leaf(self, x, g, slots, *, xp):
        s = slots["s"] + g * g
        return x - self.lr * g / xp.sqrt(s + self.eps), {"s": s}


@dataclass(frozen=True)
class RMSProp(_Rule):
    r"""RMSProp, :math:`s \leftarrow \gamma s + (1-\gamma) g^2,\ x \leftarrow x - \eta g/\sqrt{s + \epsilon}`.

    Parameters
    ----------
    lr : float, default 0.01
        :math:`\eta > 0`.
    gamma : float, default 0.9
        :math:`\gamma \in [0, 1)`.
    eps : float, default 1e-6
        :math:`\epsilon \ge 0`.

    Examples
    --------
    >>> import numpy as np
    >>> rule = RMSProp(lr=0.01, gamma=0.75, eps=0.0)
    >>> x = [np.array([1.0])]
    >>> x, state = rule.update([np.array([2.0])], rule.init(x), x)
    >>> x, state.slots["s"]
    ([array([0.98])], [array([1.])])
    """

    lr: float = 0.01
    gamma: float = 0.9
    eps: float = 1e-6
    name = "rmsprop"
    slot_names = ("s",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", _positive("lr", self.lr))
        object.__setattr__(self, "gamma", _decay("gamma", self.gamma))
        object.__setattr__(self, "eps", _nonneg("eps", self.eps))

    def _leaf(self, x, g, slots, *, xp):
        s = self.gamma * slots["s"] + (1.0 - self.gamma) * (g * g)
        return x - self.lr * g / xp.sqrt(s + self.eps), {"s": s}


@dataclass(frozen=True)
class AdaDelta(_Rule):
    r"""AdaDelta (no learning rate).

    .. math::

        s \leftarrow \rho s + (1-\rho) g^2, \quad g' = \frac{\sqrt{\Delta + \epsilon}}{\sqrt{s + \epsilon}} g, \quad
        x \leftarrow x - g', \quad \Delta \leftarrow \rho \Delta + (1-\rho) g'^2

    Parameters
    ----------
    rho : float, default 0.9
        :math:`\rho \in [0, 1)`.
    eps : float, default 1e-5
        :math:`\epsilon > 0` (with ε = 0 the first step would be zero forever).

    Examples
    --------
    >>> import numpy as np
    >>> rule = AdaDelta(rho=0.0, eps=1.0)
    >>> x = [np.array([1.0])]
    >>> x, state = rule.update([np.array([0.0])], rule.init(x), x)
    >>> x, state.slots["delta"]
    ([array([1.])], [array([0.])])
    """

    rho: float = 0.9
    eps: float = 1e-5
    name = "adadelta"
    slot_names = ("s", "delta")

    def __post_init__(self) -> None:
        object.__setattr__(self, "rho", _decay("rho", self.rho))
        object.__setattr__(self, "eps", _positive("eps", self.eps))

    def _leaf(self, x, g, slots, *, xp):
        rho, eps = self.rho, self.eps
        s = rho * slots["s"] + (1.0 - rho) * (g * g)
        g2 = xp.sqrt(slots["delta"] + eps) / xp.sqrt(s + eps) * g
        delta = rho * slots["delta"] + (1.0 - rho) * (g2 * g2)
        return x - g2, {"s": s, "delta": delta}


@dataclass(frozen=True)
class AdamRule:
    r"""Adam as a chapter-7 rule: a thin adapter over the core, :func:`adam_np.update` or :class:`adam_np.Adam`.

    Parameters
    ----------
    config : AdamConfig, default ``AdamConfig(lr=0.01, eps=1e-6)``
        The book's scratch settings (β1 = 0.9, β2 = 0.999, ε outside the root).
    in_place : bool, default False
        False: pure :func:`adam_np.update`, the state is an :class:`adam_np.AdamState` and nothing is
        mutated (any array-API library). True: the state is a stateful :class:`adam_np.Adam` over the
        parameters, whose ``step`` writes the new values into the parameter arrays themselves (NumPy,
        CuPy, torch without autograd) — the in-place fast path of the package; ``update`` then returns
        the same arrays it was given.

    Examples
    --------
    >>> import numpy as np
    >>> rule = AdamRule()
    >>> x = [np.array([1.0])]
    >>> x, state = rule.update([np.array([3.0])], rule.init(x), x)
    >>> x, state.step                 # first step: -lr * g / (|g| + eps)
    ([array([0.99])], 1)
    >>> fast = AdamRule(in_place=True)
    >>> y = [np.array([1.0])]
    >>> opt = fast.init(y)
    >>> _ = fast.update([np.array([3.0])], opt, y)
    >>> y, opt.state.step             # the caller's array holds the new value
    ([array([0.99])], 1)
    """

    config: _adam.AdamConfig = field(default_factory=lambda: _adam.AdamConfig(lr=0.01, eps=1e-6))
    in_place: bool = False
    name = "adam"

    def __post_init__(self) -> None:
        if not isinstance(self.config, _adam.AdamConfig):
            raise TypeError(f"config must be an AdamConfig, got {type(self.config).__name__}")
        if not isinstance(self.in_place, bool):
            raise TypeError(f"in_place must be a bool, got {type(self.in_place).__name__}: {self.in_place!r}")

    def init(self, params: list) -> Any:
        """:func:`adam_np.init` of ``params``, or an :class:`adam_np.Adam` over them when ``in_place``.

        Parameters
        ----------
        params : list of array

        Returns
        -------
        AdamState or adam_np.Adam
        """
        if self.in_place:
            from ..optimizer import Adam

            return Adam(list(params), config=self.config)
        return _adam.init(list(params), self.config)

    def update(self, grads: list, state: Any, params: list) -> tuple[list, Any]:
        """:func:`adam_np.update` with this rule's config (or ``state.step(grads)`` when ``in_place``).

        Parameters
        ----------
        grads : list of array
        state : AdamState or adam_np.Adam
            From :meth:`init`.
        params : list of array
            With ``in_place``, the very arrays :meth:`init` was given.

        Returns
        -------
        new_params : list of array
        new_state : AdamState or adam_np.Adam
        """
        if self.in_place:
            if len(params) != len(state.params) or any(map(operator.is_not, params, state.params)):
                raise ValueError("params must be the arrays the in-place state was made for (from init)")
            state.step(list(grads))
            return params, state
        return _adam.update(list(grads), state, list(params), self.config)

    def hyperparams(self) -> dict:
        """The :class:`AdamConfig` fields as a dict.

        Returns
        -------
        dict
        """
        return self.config.to_dict()


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adagrad": AdaGrad, "rmsprop": RMSProp, "adadelta": AdaDelta,
              "adam": AdamRule}
"""The chapter's optimizers by name."""


def make_optimizer(name: str, **hyper: Any) -> Any:
    """The rule called ``name`` with the book's defaults, overridden by ``hyper``.

    Parameters
    ----------
    name : {"sgd", "momentum", "adagrad", "rmsprop", "adadelta", "adam"}
    **hyper
        Hyper-parameters of that rule; for ``"adam"`` any :class:`adam_np.AdamConfig` field
        (defaults ``lr=0.01, eps=1e-6``) and ``in_place`` (see :class:`AdamRule`).

    Returns
    -------
    rule

    Raises
    ------
    ValueError
        For an unknown name, a hyper-parameter the rule does not have, or a bad value.

    Examples
    --------
    >>> make_optimizer("rmsprop", lr=0.02)
    RMSProp(lr=0.02, gamma=0.9, eps=1e-06)
    >>> make_optimizer("adadelta", lr=0.1)
    Traceback (most recent call last):
    ...
    ValueError: adadelta has no hyper-parameter 'lr' (it has: rho, eps)
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    if name == "adam" and "in_place" in hyper:
        in_place = hyper.pop("in_place")
        return AdamRule(make_optimizer("adam", **hyper).config, in_place=in_place)
    if name == "adam":
        allowed = [f.name for f in fields(_adam.AdamConfig)]
        params = {"lr": 0.01, "eps": 1e-6}
    else:
        allowed = [f.name for f in fields(OPTIMIZERS[name])]
        params = {}
    unknown = [k for k in hyper if k not in allowed]
    if unknown:
        raise ValueError(f"{name} has no hyper-parameter {unknown[0]!r} (it has: {', '.join(allowed)})")
    params.update(hyper)
    if name == "adam":
        return AdamRule(_adam.AdamConfig(**params))
    return OPTIMIZERS[name](**params)
