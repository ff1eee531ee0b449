r"""Import and export of ``torch.optim.Adam`` state dicts.

Mapping (torch 2.x ``Optimizer.state_dict()`` ↔ :class:`adam_np.Adam`):

==========================================  ==============================================
torch                                       adam_np
==========================================  ==============================================
``state[i]["exp_avg"]``                     ``state.v[i]`` (first moment :math:`v`)
``state[i]["exp_avg_sq"]``                  ``state.s[i]`` (second moment :math:`s`)
``state[i]["step"]`` (float32 tensor)       ``state.step`` (one int for all parameters)
no ``state[i]`` (never stepped)             step 0, zero moments
``lr``                                      ``AdamConfig.lr`` (a float)
``betas = (b1, b2)``                        ``beta1``, ``beta2``
``eps``                                     ``eps`` with ``eps_mode="outside"``
``weight_decay``                            ``weight_decay`` (L2, added to the gradient)
``maximize``                                ``maximize``
``foreach``, ``fused``                      ignored (implementation choices, same update)
``amsgrad``, ``capturable``,                must be False: not representable, rejected
``differentiable``,
``decoupled_weight_decay`` (AdamW)
==========================================  ==============================================

Several ``param_groups`` are accepted when their hyper-parameters are equal (their
parameters are concatenated in order); the per-parameter steps must all be equal.

torch keeps ``step`` as a float32 tensor, which stops counting at :math:`2^{24}`
(:math:`2^{24} + 1` rounds back to :math:`2^{24}`); adam_np's step is an int64-range
Python int. :func:`to_torch_state_dict` therefore exports ``step`` as a float32 tensor
up to :math:`2^{24}` (what torch itself creates) and as a float64 tensor (exact up to
:math:`2^{53}`, and kept as float64 by torch's non-fused, non-capturable ``load_state_dict``)
above it.

Examples
--------
>>> import numpy as np, torch
>>> w = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
>>> topt = torch.optim.Adam([w], lr=0.1)
>>> w.grad = torch.tensor([0.5, -1.0], dtype=torch.float64); topt.step()
>>> x = w.detach().numpy().copy()
>>> opt = from_torch_state_dict(topt.state_dict(), [x])
>>> opt.state.step, opt.config.lr, opt.state.v[0]
(1, 0.1, array([ 0.05, -0.1 ]))
>>> to_torch_state_dict(opt)["state"][0]["step"]
tensor(1.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core import adam as _adam
from ..core._xp import backend_name
from ..optimizer import Adam

__all__ = ["from_torch_state_dict", "to_torch_state_dict"]

_UNSUPPORTED = ("amsgrad", "capturable", "differentiable", "decoupled_weight_decay")
_STEP_FLOAT32_EXACT = 2**24
_STEP_FLOAT64_EXACT = 2**53


def _group_config(group: dict, index: int) -> dict:
    where = f"sd['param_groups'][{index}]"
    for key in _UNSUPPORTED:
        if group.get(key, False):
            raise ValueError(f"{where}[{key!r}] is {group[key]!r}: adam_np.Adam cannot represent it (expected False)")
    missing = {"lr", "betas", "eps", "weight_decay", "params"} - set(group)
    if missing:
        raise ValueError(f"{where} is missing keys {sorted(missing)}")
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{where}['betas'] must be a pair (beta1, beta2), got {betas!r}")
    lr = group["lr"]
    if hasattr(lr, "item"):  # a 0-d tensor lr (capturable / fused setups)
        lr = lr.item()
    values = {"lr": lr, "beta1": _scalar(betas[0]), "beta2": _scalar(betas[1]), "eps": group["eps"],
              "weight_decay": group["weight_decay"], "maximize": bool(group.get("maximize", False))}
    try:
        _adam.AdamConfig(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} holds a hyper-parameter adam_np rejects: {exc}") from None
    return values


def _scalar(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x


def _step_of(value: Any, where: str) -> int:
    """A torch ``step`` (tensor or number) as an exact non-negative int."""
    if hasattr(value, "item"):
        if getattr(value, "numel", lambda: 1)() != 1:
            raise ValueError(f"{where} must hold one number, got shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where} must be a number or a 0-d tensor, got {type(value).__name__}")
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise ValueError(f"{where} is {value!r}: a step count must be a whole number")
    return _adam._check_step(int(value), where)


def from_torch_state_dict(sd: dict, params: list, *, nonfinite: str = "propagate") -> Adam:
    """An :class:`adam_np.Adam` over ``params`` that continues a ``torch.optim.Adam`` run.

    Parameters
    ----------
    sd : dict
        ``torch.optim.Adam(...).state_dict()``.
    params : list of array
        The parameters, in torch's order (NumPy arrays or torch tensors), with their current
        values; they must match the saved moments in count, shape and dtype.
    nonfinite : {"propagate", "raise", "skip"}, default "propagate"
        The policy of the new optimizer (torch propagates).

    Returns
    -------
    adam_np.Adam
        Its ``state.step`` is the torch step as an int; ``v``, ``s`` are copies of
        ``exp_avg``, ``exp_avg_sq`` in the library of ``params``.

    Raises
    ------
    TypeError, ValueError
        On settings adam_np cannot represent (amsgrad, capturable, differentiable,
        decoupled weight decay), unequal groups or steps, or moments that do not match
        ``params``; nothing is built.

    Examples
    --------
    See the module docstring.
    """
    if not isinstance(sd, dict) or not {"state", "param_groups"} <= set(sd):
        raise TypeError("sd must be a torch optimizer state_dict with 'state' and 'param_groups'")
    groups = sd["param_groups"]
    if not isinstance(groups, (list, tuple)) or not groups:
        raise ValueError("sd['param_groups'] must be a non-empty list")
    configs = [_group_config(g, i) for i, g in enumerate(groups)]
    for i, c in enumerate(configs[1:], start=1):
        if c != configs[0]:
            raise ValueError(f"sd['param_groups'][{i}] has hyper-parameters {c}, unlike group 0 {configs[0]}: "
                             "adam_np.Adam has one configuration")
    ids = [pid for g in groups for pid in g["params"]]
    if not isinstance(params, (list, tuple)) or len(params) != len(ids):
        raise ValueError(f"params must be a list of {len(ids)} arrays (one per torch parameter), "
                         f"got {type(params).__name__} of {len(params) if hasattr(params, '__len__') else '?'}")
    opt = Adam(list(params), nonfinite=nonfinite, **configs[0])  # validates params, zero moments
    state = sd["state"]
    entries = [state.get(pid) for pid in ids]
    if all(e is None for e in entries):
        return opt
    steps = set()
    v, s = [], []
    xp = opt._xp
    for pid, entry, x in zip(ids, entries, opt.params):
        where = f"sd['state'][{pid!r}]"
        if entry is None:
            raise ValueError(f"{where} is missing while other parameters have state: "
                             "adam_np keeps one step counter for all parameters")
        if "max_exp_avg_sq" in entry:
            raise ValueError(f"{where} has 'max_exp_avg_sq' (amsgrad), which adam_np.Adam cannot represent")
        for key in ("step", "exp_avg", "exp_avg_sq"):
            if key not in entry:
                raise ValueError(f"{where} is missing {key!r}")
        steps.add(_step_of(entry["step"], f"{where}['step']"))
        v.append(_to_backend(entry["exp_avg"], x, xp, f"{where}['exp_avg']"))
        s.append(_to_backend(entry["exp_avg_sq"], x, xp, f"{where}['exp_avg_sq']"))
    if len(steps) != 1:
        raise ValueError(f"sd['state'] has different steps {sorted(steps)} per parameter; adam_np keeps one")
    opt.load_state_dict({"version": 1, "step": steps.pop(), "skipped": 0, "v": v, "s": s,
                         "config": opt.config.to_dict()})
    return opt


def _to_backend(t: Any, x: Any, xp: Any, where: str) -> Any:
    """torch tensor ``t`` as an array of the library of ``x`` (checked against ``x`` by load_state_dict)."""
    if backend_name(t) != "torch":
        raise TypeError(f"{where} must be a torch tensor, got {type(t).__name__}")
    t = t.detach()
    if str(t.dtype).removeprefix("torch.") != str(x.dtype).removeprefix("torch."):
        raise TypeError(f"{where} has dtype {t.dtype}, but the parameter has {x.dtype}")
    if backend_name(x) == "torch":
        return t.to(device=x.device)
    if tuple(t.shape) != tuple(x.shape):
        raise ValueError(f"{where} has shape {tuple(t.shape)}, expected {tuple(x.shape)}")
    return xp.asarray(t.cpu().numpy(), copy=True)


def to_torch_state_dict(optimizer: Adam) -> dict:
    """A ``torch.optim.Adam`` state dict holding ``optimizer``'s state and hyper-parameters.

    Load it with ``torch.optim.Adam(params).load_state_dict(sd)`` over tensors of the same
    shapes (torch casts the moments to the parameters' dtype and device).

    Parameters
    ----------
    optimizer : adam_np.Adam
        Its ``eps_mode`` must be ``"outside"`` (torch's only form), its config plain Adam
        (:attr:`adam_np.AdamConfig.is_plain_adam`: variant ``"adam"``, L2 ``weight_decay``, no
        ``eps_root``), its ``lr`` a number, and it must hold no mixed-precision master copy.

    Returns
    -------
    dict
        ``{"state": {i: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [...]}``; the
        step is a float32 tensor up to :math:`2^{24}`, float64 above (see the module notes).
        The ``nonfinite`` policy has no torch counterpart and is not exported.

    Raises
    ------
    ValueError
        On something torch.optim.Adam cannot represent.

    Examples
    --------
    See the module docstring.
    """
    import torch

    if not isinstance(optimizer, Adam):
        raise TypeError(f"optimizer must be an adam_np.Adam, got {type(optimizer).__name__}")
    config, state = optimizer.config, optimizer.state
    if config.eps_mode != "outside":
        raise ValueError(f"config.eps_mode is {config.eps_mode!r}: torch.optim.Adam only has 'outside'")
    if not config.is_plain_adam:
        setting = next(f"config.{name} is {value!r}" for name, value in (
            ("variant", config.variant_name), ("weight_decay_mode", config.weight_decay_mode),
            ("eps_root", config.eps_root))
            if value != {"variant": "adam", "weight_decay_mode": "l2", "eps_root": 0.0}[name])
        raise ValueError(f"{setting}: torch.optim.Adam holds only plain Adam (variant 'adam', L2 weight_decay, "
                         "no eps_root); use the matching torch optimizer instead")
    if callable(config.lr):
        raise ValueError("config.lr is a schedule: torch keeps lr as a number in param_groups")  # noqa: TRY004
    if state.master is not None:
        raise ValueError("state.master (mixed-precision master copy) has no torch.optim.Adam counterpart")
    step = int(state.step)
    if step > _STEP_FLOAT64_EXACT:
        raise ValueError(f"state.step is {step}, beyond 2**53: no torch float tensor holds it exactly")
    step_dtype = torch.float32 if step <= _STEP_FLOAT32_EXACT else torch.float64
    n = len(optimizer.params)
    torch_state = {}
    if step > 0:
        for i, (v, s) in enumerate(zip(state.v, state.s)):
            torch_state[i] = {
                "step": torch.tensor(float(step), dtype=step_dtype),
                "exp_avg": _to_torch(v, torch),
                "exp_avg_sq": _to_torch(s, torch),
            }
    group = {
        "lr": config.lr, "betas": (config.beta1, config.beta2), "eps": config.eps,
        "weight_decay": config.weight_decay, "amsgrad": False, "maximize": config.maximize,
        "foreach": None, "capturable": False, "differentiable": False, "fused": None,
        "decoupled_weight_decay": False, "params": list(range(n)),
    }
    return {"state": torch_state, "param_groups": [group]}


def _to_torch(a: Any, torch: Any) -> Any:
    if backend_name(a) == "torch":
        return a.detach().clone()
    if hasattr(a, "get") and backend_name(a) == "cupy":
        a = a.get()
    return torch.from_numpy(np.array(a, copy=True))
