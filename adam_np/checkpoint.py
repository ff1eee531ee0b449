r"""Atomic, checksummed checkpoints of an :class:`adam_np.Adam` run as one ``.npz`` file.

A checkpoint holds everything needed to continue a training run bit for bit:

- the parameters (the optimizer's own arrays, restored in place on load),
- the optimizer state: step :math:`t`, skipped steps, moments :math:`v, s`, the mixed-precision
  master copy if any, AMSGrad's ``s_max`` and NAdam's ``mu_product``, and the hyper-parameters,
- the state of the data-order random generator (``numpy.random.Generator.bit_generator.state``),
- ``extra``: a small JSON-serializable dict of loop position (epoch, batch index, loss history...).

File format (``FORMAT_VERSION`` 1): an uncompressed ``.npz`` read with ``allow_pickle=False``
whose members are ``param/<i>``, ``v/<i>``, ``s/<i>``, ``master/<i>``, ``s_max/<i>`` (NumPy arrays),
``meta`` (UTF-8 JSON as ``uint8``) and ``sha256`` (hex digest as ``uint8``). The digest covers
every array's name, dtype, shape and bytes (in name order) and the ``meta`` bytes, so a
corrupt or truncated file is detected, not loaded.

Writing is atomic: the file is written to a temporary file in the same directory, flushed,
fsynced, renamed over ``path`` with :func:`os.replace`, and the directory is fsynced. A process
killed at any moment leaves ``path`` holding either the previous or the new checkpoint
(plus, at worst, a stale ``.<name>.*.tmp`` file next to it, which the next save to ``path`` removes).

Examples
--------
>>> import numpy as np, os, tempfile
>>> from adam_np import Adam
>>> from adam_np import checkpoint
>>> w = np.array([1.0, 2.0]); opt = Adam([w], lr=0.1)
>>> rng = np.random.default_rng(0)
>>> opt.step([w.copy()]); order = rng.permutation(4)
>>> path = os.path.join(tempfile.mkdtemp(), "run.npz")
>>> checkpoint.save(path, opt, rng=rng, extra={"epoch": 0, "batch": 1, "loss": [0.5]})
>>> w2 = np.zeros(2); opt2 = Adam([w2], lr=0.1); rng2 = np.random.default_rng(123)
>>> ck = checkpoint.load(path, opt2, rng=rng2)
>>> ck.step, ck.extra, bool((w2 == w).all()), bool((rng2.permutation(4) == rng.permutation(4)).all())
(1, {'epoch': 0, 'batch': 1, 'loss': [0.5]}, True, True)
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import numpy as np

from ._npz import CheckpointError, read_verified, write_atomic
from .core._xp import is_lazy, to_numpy

__all__ = ["FORMAT_VERSION", "Checkpoint", "CheckpointError", "load", "read", "read_verified", "save",
           "write_atomic"]

FORMAT_VERSION = 1
_FORMAT_NAME = "adam_np.checkpoint"


class Checkpoint(NamedTuple):
    """What a checkpoint file holds, as read by :func:`read` / returned by :func:`load`.

    Attributes
    ----------
    step : int
        The optimizer's step counter :math:`t`.
    skipped : int
        Steps skipped on non-finite gradients.
    config : dict
        The :class:`adam_np.AdamConfig` fields (``lr`` is None when it was a schedule).
    params, v, s : list of numpy.ndarray
        Parameters and moments.
    master : list of numpy.ndarray or None
        Mixed-precision master copy.
    rng_state : dict or None
        ``bit_generator.state`` of the data-order generator.
    extra : dict
        The caller's loop position and other small metadata.
    s_max : list of numpy.ndarray or None
        AMSGrad's running maximum of the second moment.
    mu_product : float
        NAdam's running product of momentum coefficients.
    """

    step: int
    skipped: int
    config: dict
    params: list
    v: list
    s: list
    master: list | None
    rng_state: dict | None
    extra: dict
    s_max: list | None = None
    mu_product: float = 1.0


def save(path: Any, optimizer: Any, *, rng: np.random.Generator | None = None, extra: dict | None = None) -> None:
    """Write a checkpoint of ``optimizer`` (its parameters and state), ``rng`` and ``extra`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.npz`` file; replaced atomically, its directory must exist.
    optimizer : adam_np.Adam
        The optimizer; its ``params`` (the caller's arrays) are saved with its state.
    rng : numpy.random.Generator, optional
        The data-order generator; its ``bit_generator.state`` is saved.
    extra : dict, optional
        Small JSON-serializable metadata (str keys): epoch, batch index, loss history, ...
        Python floats round-trip exactly.

    Raises
    ------
    TypeError, ValueError
        On a bad argument (naming it); nothing is written.

    Notes
    -----
    A learning-rate schedule (a callable ``lr``) cannot be stored: the file records ``lr``
    as None and :func:`load` keeps the schedule the loading optimizer was built with.

    Examples
    --------
    See the module docstring.
    """
    _check_optimizer(optimizer)
    path = os.fspath(path)
    rng_state = _rng_state(rng)
    extra = {} if extra is None else extra
    if not isinstance(extra, dict) or not all(isinstance(k, str) for k in extra):
        raise TypeError(f"extra must be a dict with str keys, got {type(extra).__name__}: {extra!r:.80}")
    try:
        extra = json.loads(json.dumps(extra))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"extra must be JSON-serializable (numbers, strings, lists, dicts): {exc}") from None
    state = optimizer.state
    arrays = {}
    groups = (("param", optimizer.params), ("v", state.v), ("s", state.s), ("master", state.master or []),
              ("s_max", state.s_max or []))
    for key, seq in groups:
        for i, x in enumerate(seq):
            arrays[f"{key}/{i}"] = to_numpy(x, f"{key}[{i}]")
    config = optimizer.config.to_dict()
    schedule = callable(config["lr"])
    if schedule:
        config["lr"] = None
    meta = {
        "format": _FORMAT_NAME,
        "version": FORMAT_VERSION,
        "step": int(state.step),
        "skipped": int(state.skipped),
        "n_params": len(optimizer.params),
        "master": state.master is not None,
        "s_max": state.s_max is not None,
        "mu_product": float(state.mu_product),
        "config": config,
        "lr_schedule": schedule,
        "rng": rng_state,
        "extra": extra,
    }
    write_atomic(path, arrays, meta)


def _check_optimizer(optimizer: Any) -> None:
    """``optimizer`` must be an :class:`adam_np.Adam` (checked by its interface: this module sits below
    :mod:`adam_np.optimizer`, which imports it for :meth:`~adam_np.Adam.save` and :meth:`~adam_np.Adam.load`)."""
    if not all(hasattr(optimizer, a) for a in ("params", "state", "config", "state_dict", "load_state_dict")):
        raise TypeError(f"optimizer must be an adam_np.Adam, got {type(optimizer).__name__}")
    if any(is_lazy(x) for x in optimizer.params):
        raise TypeError("optimizer holds Dask arrays: use adam_np.cluster.save_zarr / load_zarr, which write and "
                        "read them chunk-parallel on the workers (an .npz would gather everything here)")


def _rng_state(rng: Any) -> dict | None:
    if rng is None:
        return None
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng.bit_generator.state


def read(path: Any) -> Checkpoint:
    """Read and verify a checkpoint file without touching any optimizer.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`.

    Returns
    -------
    Checkpoint

    Raises
    ------
    CheckpointError
        (a ValueError) if the file is missing, not an ``.npz``, truncated, fails its sha256
        check, has another format version, or is internally inconsistent.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from adam_np import Adam
    >>> path = os.path.join(tempfile.mkdtemp(), "c.npz")
    >>> Adam([np.ones(3)]).save(path)
    >>> ck = read(path); ck.step, ck.params[0].shape
    (0, (3,))
    >>> with open(path, "r+b") as f:
    ...     _ = f.truncate(100)
    >>> read(path)
    Traceback (most recent call last):
    ...
    adam_np.checkpoint.CheckpointError: checkpoint ... is not a readable .npz file (truncated or corrupt): ...
    """
    path = os.fspath(path)
    members, meta = read_verified(path, _FORMAT_NAME, FORMAT_VERSION)
    required = {"step", "skipped", "n_params", "master", "config", "rng", "extra"}
    if not required <= set(meta) or not isinstance(meta["n_params"], int) or not isinstance(meta["config"], dict):
        raise CheckpointError(f"checkpoint {path!r} has incomplete metadata (needs {sorted(required)})")
    n = meta["n_params"]
    if not 0 <= n <= len(members):
        raise CheckpointError(f"checkpoint {path!r} has n_params {n}, but holds {len(members)} arrays")
    groups = {}
    for key in ("param", "v", "s", "master", "s_max"):
        count = n if key not in ("master", "s_max") or meta.get(key) else 0
        names = [f"{key}/{i}" for i in range(count)]
        if any(name not in members for name in names):
            raise CheckpointError(f"checkpoint {path!r} lacks some of {names}")
        groups[key] = [members.pop(name) for name in names]
    if members:
        raise CheckpointError(f"checkpoint {path!r} has unexpected members {sorted(members)}")
    if not isinstance(meta["extra"], dict):
        raise CheckpointError(f"checkpoint {path!r} has extra of type {type(meta['extra']).__name__}, expected a dict")
    for key in ("s", "s_max"):
        for i, a in enumerate(groups[key]):
            if a.dtype.kind == "f" and not bool(np.all(a >= 0)):  # False for NaN as for negative entries
                raise CheckpointError(f"checkpoint {path!r}: {key}[{i}] has negative or NaN entries; a second "
                                      "moment is >= 0")
    return Checkpoint(
        meta["step"], meta["skipped"], meta["config"], groups["param"], groups["v"], groups["s"],
        groups["master"] if meta["master"] else None, meta["rng"], meta["extra"],
        groups["s_max"] if meta.get("s_max") else None, meta.get("mu_product", 1.0),
    )


def load(path: Any, optimizer: Any, *, rng: np.random.Generator | None = None) -> Checkpoint:
    """Restore ``optimizer`` (state and parameters, in place) and ``rng`` from a checkpoint.

    Everything is read and checked first; only then are the optimizer, its parameters and
    ``rng`` changed, so on any error nothing is loaded.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`.
    optimizer : adam_np.Adam
        Built over parameters of the same count, shapes and dtypes as the saved ones; its
        parameter arrays receive the saved values in place.
    rng : numpy.random.Generator, optional
        Receives the saved data-order state (the checkpoint must hold one, of the same
        bit generator).

    Returns
    -------
    Checkpoint
        What was read; ``extra`` holds the caller's loop position.

    Raises
    ------
    CheckpointError
        (a ValueError) on an unreadable, corrupt, truncated, wrong-version or mismatched file.
    TypeError
        On a bad ``optimizer`` or ``rng`` argument.

    Examples
    --------
    See the module docstring.
    """
    _check_optimizer(optimizer)
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    ck = read(path)
    path = os.fspath(path)
    params = optimizer.params
    if len(ck.params) != len(params):
        raise CheckpointError(f"checkpoint {path!r} holds {len(ck.params)} parameters, the optimizer has {len(params)}")
    xp = optimizer._xp
    for i, (saved, x) in enumerate(zip(ck.params, params)):
        if tuple(saved.shape) != tuple(x.shape):
            raise CheckpointError(
                f"checkpoint {path!r}: param {i} has shape {saved.shape}, params[{i}] has {tuple(x.shape)}"
            )
        if str(saved.dtype) != _dtype_name(x.dtype):
            raise CheckpointError(f"checkpoint {path!r}: param {i} has dtype {saved.dtype}, params[{i}] has {x.dtype}")
    config = dict(ck.config)
    if ck.config.get("lr") is None:
        if not callable(optimizer.config.lr):
            raise CheckpointError(f"checkpoint {path!r} was saved with an lr schedule; build the optimizer with one")
        config["lr"] = optimizer.config.lr
    device = getattr(params[0], "device", None)
    convert = (lambda arrays: None if arrays is None else [xp.asarray(a, device=device) for a in arrays])
    state_dict = {"version": 1, "step": ck.step, "skipped": ck.skipped, "v": convert(ck.v), "s": convert(ck.s),
                  "master": convert(ck.master), "s_max": convert(ck.s_max), "mu_product": ck.mu_product,
                  "config": config}
    new_params = convert(ck.params)
    if rng is not None:
        if ck.rng_state is None:
            raise CheckpointError(f"checkpoint {path!r} holds no rng state, but rng was given")
        probe = type(rng.bit_generator)()
        try:
            probe.state = ck.rng_state
        except (TypeError, ValueError, KeyError, OverflowError) as exc:  # a hand-edited state's wrong keys/values
            raise CheckpointError(
                f"checkpoint {path!r}: its rng state does not fit {type(rng.bit_generator).__name__}: {exc}"
            ) from None
    optimizer._check_writeable()
    saved = optimizer.state, optimizer.config
    try:
        optimizer.load_state_dict(state_dict)  # validates everything, then commits
    except (TypeError, ValueError) as exc:
        optimizer.state, optimizer.config = saved
        raise CheckpointError(f"checkpoint {path!r} does not match the optimizer: {exc}") from None
    for x, new in zip(params, new_params):
        x[...] = new
    if rng is not None:
        rng.bit_generator.state = ck.rng_state
    return ck


def _dtype_name(dtype: Any) -> str:
    """``float32`` for NumPy's and torch's float32 alike."""
    return str(dtype).removeprefix("torch.")
