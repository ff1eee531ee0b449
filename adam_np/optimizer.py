"""Stateful Adam that updates the caller's arrays in place, as ``torch.optim.Adam`` does.

>>> import numpy as np
>>> from adam_np import Adam
>>> w, b = np.ones((5, 1)), np.zeros(1)
>>> opt = Adam([w, b], lr=0.1)
>>> opt.step([np.ones((5, 1)), -np.ones(1)])
>>> w.T, b                 # the caller's own arrays hold the new values
(array([[0.9, 0.9, 0.9, 0.9, 0.9]]), array([0.1]))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import adam as _adam
from ._xp import array_namespace, is_writeable

__all__ = ["Adam"]

STATE_DICT_VERSION = 1


class Adam:
    r"""Adam over a list of writeable arrays, updated in place by :meth:`step`.

    Parameters
    ----------
    params : sequence of array
        Writeable arrays of one library (NumPy, CuPy, or torch tensors without autograd),
        real floating dtype. They are updated in place; no copy is kept.
    lr, beta1, beta2, eps : float, optional
        As in :class:`adam_np.AdamConfig` (defaults 1e-3, 0.9, 0.999, 1e-8).
    config : AdamConfig, optional
        All hyper-parameters at once; then pass no other hyper-parameter.
    moment_dtype, master : optional
        Mixed precision, as in :func:`adam_np.init` (float16 parameters get float32 moments
        and a float32 master copy by default).
    **options
        Further :class:`adam_np.AdamConfig` fields: ``eps_mode``, ``weight_decay``,
        ``maximize``, ``nonfinite``.

    Attributes
    ----------
    params : list of array
        The caller's arrays.
    config : AdamConfig
    state : AdamState
        Step counter and moments (lists aligned with ``params``).

    Notes
    -----
    :meth:`step` computes :math:`x_t` with :func:`adam_np.update` and writes it into the
    caller's arrays only after every check has passed, so a failing step changes nothing.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([3.0])
    >>> opt = Adam([x], lr=0.5)
    >>> for _ in range(3):
    ...     opt.step([2 * x])            # gradient of x**2
    >>> x, opt.state.step
    (array([1.5]), 3)
    """

    def __init__(self, params: Sequence[Any], lr: Any = None, beta1: Any = None, beta2: Any = None,
                 eps: Any = None, *, config: _adam.AdamConfig | None = None, moment_dtype: Any = None,
                 master: bool | None = None, **options: Any) -> None:
        given = {k: v for k, v in dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, **options).items() if v is not None}
        if config is not None:
            if given:
                raise TypeError(f"pass either config or hyper-parameters, not both (got config and {sorted(given)})")
            if not isinstance(config, _adam.AdamConfig):
                raise TypeError(f"config must be an AdamConfig, got {type(config).__name__}")
        else:
            config = _adam.AdamConfig(**given)
        if not isinstance(params, (list, tuple)):
            raise TypeError(f"params must be a list or tuple of arrays, got {type(params).__name__}")
        params = list(params)
        state = _adam.init(params, config, moment_dtype=moment_dtype, master=master)
        for i, x in enumerate(params):
            if not is_writeable(x):
                raise ValueError(f"params[{i}] is not writeable in place ({type(x).__name__}); "
                                 "use adam_np.update for immutable arrays")
        self.params = params
        self.config = config
        self.state = state
        self._xp = array_namespace(*params, name="params")

    def step(self, grads: Sequence[Any]) -> None:
        """Take one Adam step, writing the new values into ``params`` in place.

        Parameters
        ----------
        grads : sequence of array
            One gradient per parameter, same shape, dtype and library.

        Raises
        ------
        TypeError, ValueError
            On a mismatched gradient (naming ``grads[i]``); nothing is changed.
        FloatingPointError
            On a non-finite gradient with ``nonfinite="raise"``; nothing is changed.
        """
        if not isinstance(grads, (list, tuple)):
            raise TypeError(f"grads must be a list or tuple of arrays, got {type(grads).__name__}")
        new_params, new_state = _adam.update(list(grads), self.state, self.params, self.config)
        self._check_writeable()  # all of them before writing any: no partial step
        if new_state.step != self.state.step:
            for x, x_new in zip(self.params, new_params):
                x[...] = x_new
        self.state = new_state

    def state_dict(self) -> dict:
        """A copy of the optimizer state: step, skipped steps, moments and hyper-parameters.

        Returns
        -------
        dict
            ``{"version", "step", "skipped", "v", "s", "master", "s_max", "mu_product", "config"}``;
            ``v`` and ``s`` are lists of copies of the moment arrays, ``master`` a list of copies of
            the master parameters (mixed precision) or None, ``s_max`` AMSGrad's running maximum or
            None, ``mu_product`` NAdam's running product (a float), ``config`` the
            :class:`AdamConfig` fields.

        Examples
        --------
        >>> import numpy as np
        >>> opt = Adam([np.zeros(2)])
        >>> sorted(opt.state_dict())
        ['config', 'master', 'mu_product', 's', 's_max', 'skipped', 'step', 'v', 'version']
        """
        copy = self._copy
        return {
            "version": STATE_DICT_VERSION,
            "step": int(self.state.step),
            "skipped": int(self.state.skipped),
            "v": copy(self.state.v),
            "s": copy(self.state.s),
            "master": copy(self.state.master),
            "s_max": copy(self.state.s_max),
            "mu_product": float(self.state.mu_product),
            "config": self.config.to_dict(),
        }

    def _copy(self, arrays: Any) -> list | None:
        """Copies of a list of state arrays (None stays None)."""
        return None if arrays is None else [self._xp.asarray(a, copy=True) for a in arrays]

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a state from :meth:`state_dict`, after checking all of it.

        Parameters
        ----------
        state_dict : dict
            As returned by :meth:`state_dict` (arrays copied in, so later changes to the
            dict do not reach the optimizer).

        Raises
        ------
        TypeError, ValueError
            On a missing key, wrong version, bad step, or moments that do not match
            ``params`` in count, shape, dtype or library; nothing is loaded.

        Examples
        --------
        >>> import numpy as np
        >>> a, b = Adam([np.ones(2)]), Adam([np.ones(2)])
        >>> a.step([np.ones(2)])
        >>> b.load_state_dict(a.state_dict()); b.state.step
        1
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        missing = {"version", "step", "v", "s", "config"} - set(state_dict)
        if missing:
            raise ValueError(f"state_dict is missing keys {sorted(missing)}")
        version = state_dict["version"]
        if isinstance(version, bool) or not isinstance(version, int) or version != STATE_DICT_VERSION:
            raise ValueError(f"state_dict['version'] is {version!r:.80}, expected {STATE_DICT_VERSION}")
        cfg = state_dict["config"]
        if not isinstance(cfg, dict):
            raise TypeError(f"state_dict['config'] must be a dict, got {type(cfg).__name__}")
        unknown = set(cfg) - set(_adam.AdamConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(f"state_dict['config'] has unknown fields {sorted(map(str, unknown))}")
        config = _adam.AdamConfig(**cfg)
        step = _adam._check_step(state_dict["step"], "state_dict['step']", limit=_adam.INT64_MAX - 1)
        skipped = _adam._check_step(state_dict.get("skipped", 0), "state_dict['skipped']")
        lists = {}
        for key in ("v", "s", "master", "s_max"):
            value = state_dict.get(key)
            if key in ("master", "s_max") and value is None:
                lists[key] = None
            elif not isinstance(value, (list, tuple)):
                raise TypeError(f"state_dict[{key!r}] must be a list of arrays, got {type(value).__name__}")
            else:
                lists[key] = list(value)
        if lists["s_max"] is not None and config.variant != "amsgrad":
            raise ValueError(f"state_dict['s_max'] is only for variant='amsgrad', got variant={config.variant!r}")
        mu_product = _adam._real("state_dict['mu_product']", state_dict.get("mu_product", 1.0))
        state = _adam.AdamState(step, lists["v"], lists["s"], skipped, master=lists["master"],
                                s_max=lists["s_max"], mu_product=mu_product)
        # Validate with the same checks as an update (structure, shapes, dtypes, library, step).
        _adam._validate(list(self.params), state, self.params, config)
        copy = self._copy
        self.config = config
        self.state = _adam.AdamState(step, copy(state.v), copy(state.s), skipped, master=copy(state.master),
                                     s_max=copy(state.s_max), mu_product=mu_product)

    def _check_writeable(self) -> None:
        for i, x in enumerate(self.params):
            if not is_writeable(x):
                raise ValueError(f"params[{i}] is not writeable in place ({type(x).__name__}); nothing was updated")

    def save(self, path: Any, **kwargs: Any) -> None:
        """Write a checkpoint of this optimizer (and, optionally, more) atomically to ``path``.

        Delegates to :func:`adam_np.checkpoint.save`, which documents ``rng`` and ``extra``.

        Parameters
        ----------
        path : str or os.PathLike
            The ``.npz`` file to write (replaced atomically).
        **kwargs
            Passed on: ``rng``, ``extra``.

        Examples
        --------
        >>> import numpy as np, tempfile, os
        >>> x = np.ones(2); opt = Adam([x]); opt.step([np.ones(2)])
        >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
        >>> opt.save(path)
        >>> other = Adam([np.ones(2)]); _ = other.load(path); other.state.step
        1
        """
        from . import checkpoint

        checkpoint.save(path, self, **kwargs)

    def load(self, path: Any, **kwargs: Any) -> Any:
        """Restore this optimizer from a checkpoint written by :meth:`save`; nothing changes on error.

        Delegates to :func:`adam_np.checkpoint.load`.

        Parameters
        ----------
        path : str or os.PathLike
            The checkpoint file.
        **kwargs
            Passed on: ``rng``.

        Returns
        -------
        adam_np.checkpoint.Checkpoint
            What was read (step, rng state, extra metadata).
        """
        from . import checkpoint

        return checkpoint.load(path, self, **kwargs)
