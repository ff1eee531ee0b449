"""Checkpoints of a whole training run, so that an interrupted run resumes bit for bit.

A run of :func:`adam_np.book.train.run_train` is fully described by its :class:`~adam_np.book.train.TrainState`
(parameters, optimizer state, the one data-order generator, the epoch's order and the position in
it, the loss history) plus the settings it was started with. :func:`save_run` writes all of it
with :func:`adam_np.checkpoint.write_atomic` (checksummed ``.npz``, ``allow_pickle=False``,
temp file + fsync + ``os.replace``); :func:`load_run` reads it back after checking that the
settings, the data and the optimizer state's layout match the run being resumed.

Any rule of :mod:`adam_np.book.chapter7` works: the optimizer state is an :class:`adam_np.AdamState`,
a stateful :class:`adam_np.Adam` (``AdamRule(in_place=True)``) or a
:class:`~adam_np.book.chapter7.SlotState`.

Examples
--------
>>> import os, tempfile
>>> from adam_np.book.chapter7 import AdamRule
>>> from adam_np.book.data import make_synthetic
>>> from adam_np.book.train import init_train, run_train
>>> X, y, _, _ = make_synthetic(n=50, d=2)
>>> rule, path = AdamRule(), os.path.join(tempfile.mkdtemp(), "run.npz")
>>> full = run_train(init_train(rule, X, y, seed=1), rule, X, y, num_epochs=2)
>>> part = run_train(init_train(rule, X, y, seed=1), rule, X, y, num_epochs=2,
...                  on_step=lambda s: s.examples_seen == 70)          # interrupted mid-epoch
>>> save_run(path, part, rule, X, y, settings={"seed": 1})
>>> resumed = run_train(load_run(path, rule, X, y, settings={"seed": 1}), rule, X, y, num_epochs=2)
>>> resumed.losses == full.losses, bool((resumed.params[0] == full.params[0]).all())
(True, True)
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from .._npz import CheckpointError, read_verified, write_atomic
from ..core import adam as _adam
from ..core._xp import array_namespace, to_numpy
from .train import TrainState

__all__ = ["FORMAT_VERSION", "data_fingerprint", "load_run", "save_run"]

FORMAT_NAME = "adam_np.train_run"
FORMAT_VERSION = 1


def data_fingerprint(features: Any, labels: Any) -> str:
    """sha256 of the training data (shapes, dtypes and values), to refuse resuming on other data.

    Parameters
    ----------
    features, labels : array

    Returns
    -------
    str
        Hex digest.

    Examples
    --------
    >>> import numpy as np
    >>> data_fingerprint(np.zeros((2, 1)), np.ones(2)) == data_fingerprint(np.zeros((2, 1)), np.zeros(2))
    False
    """
    h = hashlib.sha256()
    for name, a in (("features", features), ("labels", labels)):
        a = to_numpy(a, name)
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _opt_state_parts(opt_state: Any) -> tuple[dict, dict]:
    """Split an optimizer state into JSON metadata and named arrays."""
    from ..optimizer import Adam
    from .chapter7 import SlotState

    if isinstance(opt_state, Adam):
        meta, arrays = _opt_state_parts(opt_state.state)
        return {**meta, "kind": "adam_inplace"}, arrays
    if isinstance(opt_state, _adam.AdamState):
        arrays = {}
        for key in ("v", "s", "master", "s_max"):
            for i, a in enumerate(getattr(opt_state, key) or []):
                arrays[f"opt/{key}/{i}"] = to_numpy(a, f"state.{key}[{i}]")
        meta = {"kind": "adam", "step": int(opt_state.step), "skipped": int(opt_state.skipped),
                "mu_product": float(opt_state.mu_product), "master": opt_state.master is not None,
                "s_max": opt_state.s_max is not None}
        return meta, arrays
    if isinstance(opt_state, SlotState):
        arrays = {f"opt/{k}/{i}": to_numpy(a, f"state.slots[{k!r}][{i}]")
                  for k, seq in opt_state.slots.items() for i, a in enumerate(seq)}
        return {"kind": "slots", "step": int(opt_state.step), "slots": list(opt_state.slots)}, arrays
    raise TypeError(f"cannot checkpoint an optimizer state of type {type(opt_state).__name__}")


def save_run(path: Any, state: TrainState, optimizer: Any, features: Any, labels: Any, *,
             settings: dict | None = None) -> None:
    """Write the training run ``state`` to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.npz``; replaced atomically.
    state : TrainState
        The run, e.g. from inside an ``on_step`` callback of :func:`adam_np.book.train.run_train`.
    optimizer : rule
        The rule driving the run (its name and hyper-parameters are recorded).
    features, labels : array
        The training data (only a fingerprint is stored).
    settings : dict, optional
        JSON-serializable run settings (batch size, epochs, seed, ...) that :func:`load_run`
        must be given again, equal, to resume.

    Raises
    ------
    TypeError
        On settings that are not JSON-serializable or an optimizer state it cannot store.
    """
    if not isinstance(state, TrainState):
        raise TypeError(f"state must be a TrainState, got {type(state).__name__}")
    opt_meta, arrays = _opt_state_parts(state.opt_state)
    for i, p in enumerate(state.params):
        arrays[f"param/{i}"] = to_numpy(p, f"params[{i}]")
    if state.order is not None:
        arrays["order"] = np.asarray(state.order, dtype=np.int64)
    arrays["losses"] = np.asarray(state.losses, dtype=np.float64)
    arrays["epochs"] = np.asarray(state.epochs, dtype=np.float64)
    meta = {
        "format": FORMAT_NAME, "version": FORMAT_VERSION,
        "run": _run_identity(optimizer, data_fingerprint(features, labels), settings),
        "n_params": len(state.params), "opt": opt_meta,
        "rng": state.rng.bit_generator.state, "rng_type": type(state.rng.bit_generator).__name__,
        "epoch": state.epoch, "batch": state.batch, "examples_seen": state.examples_seen,
        "train_seconds": state.train_seconds,
    }
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"settings must be JSON-serializable: {exc}") from None
    write_atomic(path, arrays, meta)


def _run_identity(optimizer: Any, data: str, settings: dict | None) -> dict:
    """What makes a run this run: the rule, its hyper-parameters, the data's fingerprint ``data``, the settings."""
    if settings is not None and not isinstance(settings, dict):
        raise TypeError(f"settings must be a dict, got {type(settings).__name__}")
    hyper = {k: (None if callable(v) else v) for k, v in optimizer.hyperparams().items()}
    identity = {"optimizer": optimizer.name, "hyperparams": hyper, "data": data, "settings": dict(settings or {})}
    return json.loads(json.dumps(identity))  # what a JSON round trip gives, for comparison on load


def _check_identity(path: str, saved: dict, current: dict) -> None:
    """A :class:`CheckpointError` naming the first of settings, optimizer, hyper-parameters, data that differs."""
    if not isinstance(saved, dict):
        raise CheckpointError(f"checkpoint {path!r} has a run identity of type {type(saved).__name__}, expected a "
                              "dict: not a run checkpoint of this package, or edited")
    for key in ("settings", "optimizer", "hyperparams", "data"):
        if saved.get(key) != current[key]:
            what = f"{key}: saved {saved.get(key)!r}, now {current[key]!r}" if key != "data" else "the data differ"
            raise CheckpointError(f"checkpoint {path!r} is from another run ({what})")


def load_run(path: Any, optimizer: Any, features: Any, labels: Any, *, settings: dict | None = None) -> TrainState:
    """Read a run written by :func:`save_run` and rebuild its :class:`TrainState` on ``features``' backend.

    Parameters
    ----------
    path : str or os.PathLike
    optimizer : rule
        The same rule (name and hyper-parameters) as when saving.
    features, labels : array
        The same data as when saving (checked by fingerprint).
    settings : dict, optional
        Equal to the ``settings`` given to :func:`save_run`.

    Returns
    -------
    TrainState
        Ready for :func:`adam_np.book.train.run_train`, which then continues bit for bit.

    Raises
    ------
    CheckpointError
        (a ValueError) on an unreadable, corrupt or truncated file, another format version, or a
        run that differs from this one (optimizer, hyper-parameters, data, settings, state layout),
        naming what differs.
    """
    path_s = str(path)
    members, meta = read_verified(path, FORMAT_NAME, FORMAT_VERSION)
    _check_identity(path_s, meta.get("run", {}), _run_identity(optimizer, data_fingerprint(features, labels), settings))
    from .train import init_train

    xp = array_namespace(features, labels, name="features and labels")
    template = init_train(optimizer, features, labels, seed=0)  # layout, dtypes and device of a fresh run
    device = getattr(features, "device", None)

    used = {"order", "losses", "epochs"}

    def restore(name: str, like: Any) -> Any:
        used.add(name)
        if name not in members:
            raise CheckpointError(f"checkpoint {path_s!r} lacks {name!r}")
        a = members[name]
        expected = to_numpy(like, name)
        if a.shape != expected.shape or a.dtype != expected.dtype:
            raise CheckpointError(f"checkpoint {path_s!r}: {name} has shape {a.shape} and dtype {a.dtype}, "
                                  f"expected {expected.shape} and {expected.dtype}")
        return xp.asarray(a, device=device) if device is not None else xp.asarray(a)

    params = [restore(f"param/{i}", p) for i, p in enumerate(template.params)]
    if meta.get("n_params") != len(params):
        raise CheckpointError(f"checkpoint {path_s!r} holds {meta.get('n_params')} parameters, expected {len(params)}")
    opt_state = _restore_opt_state(meta.get("opt", {}), template.opt_state, params, optimizer, restore, path_s)
    rng = np.random.default_rng()
    if meta.get("rng_type") != type(rng.bit_generator).__name__:
        raise CheckpointError(f"checkpoint {path_s!r} has a {meta.get('rng_type')} generator, expected PCG64")
    try:
        rng.bit_generator.state = meta["rng"]
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"checkpoint {path_s!r} has an unusable rng state: {exc}") from None
    unexpected = sorted(set(members) - used)
    if unexpected:
        raise CheckpointError(f"checkpoint {path_s!r} has unexpected members {unexpected}")
    n = features.shape[0]
    order = members.get("order")
    if order is not None and (order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n))):
        raise CheckpointError(f"checkpoint {path_s!r} has an 'order' that is not a permutation of {n} examples")
    position = {k: meta.get(k) for k in ("epoch", "batch", "examples_seen")}
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in position.values()):
        raise CheckpointError(f"checkpoint {path_s!r} has a bad loop position {position}")
    _check_position(path_s, position, order, n, dict(settings or {}))
    history = _check_history(path_s, members, meta)
    return TrainState(params=params, opt_state=opt_state, rng=rng, order=order, **history, **position)


def _int_setting(settings: dict, key: str) -> int | None:
    value = settings.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def _check_position(path: str, position: dict, order: Any, n: int, settings: dict) -> None:
    """The loop position must be one the loop can reach: ``epoch``/``batch``/``examples_seen`` agree."""
    epoch, batch, seen = position["epoch"], position["batch"], position["examples_seen"]
    if batch > 0 and order is None:
        raise CheckpointError(f"checkpoint {path!r} is at batch {batch} of epoch {epoch} but lacks that epoch's "
                              "'order'")
    num_epochs, batch_size = _int_setting(settings, "epochs"), _int_setting(settings, "batch_size")
    if num_epochs is not None and (epoch > num_epochs or (epoch == num_epochs and batch > 0)):
        raise CheckpointError(f"checkpoint {path!r} has epoch {epoch} (batch {batch}), beyond the run's "
                              f"{num_epochs} epochs")
    if batch_size is not None:
        batches = -(-n // batch_size)
        if batch > batches:
            raise CheckpointError(f"checkpoint {path!r} has batch {batch}, but an epoch has {batches} batches "
                                  f"(n={n}, batch_size={batch_size})")
        expected = epoch * n + min(batch * batch_size, n)
        if seen != expected:
            raise CheckpointError(f"checkpoint {path!r} has examples_seen {seen}, expected {expected} at epoch "
                                  f"{epoch}, batch {batch} (n={n}, batch_size={batch_size})")
    elif not (seen == epoch * n if batch == 0 else epoch * n + batch <= seen <= (epoch + 1) * n):
        raise CheckpointError(f"checkpoint {path!r} has examples_seen {seen}, inconsistent with epoch {epoch}, "
                              f"batch {batch} (n={n})")


def _check_history(path: str, members: dict, meta: dict) -> dict:
    """``losses``/``epochs`` (1-D, same length, float) and ``train_seconds`` (a finite number >= 0)."""
    history = {}
    for key in ("losses", "epochs"):
        a = members.get(key)
        if a is None:
            raise CheckpointError(f"checkpoint {path!r} lacks {key!r}")
        if a.ndim != 1 or a.dtype != np.float64:
            raise CheckpointError(f"checkpoint {path!r}: {key} has shape {a.shape} and dtype {a.dtype}, "
                                  "expected 1-D float64")
        history[key] = a.tolist()
    if len(history["losses"]) != len(history["epochs"]):
        raise CheckpointError(f"checkpoint {path!r} has {len(history['losses'])} losses but "
                              f"{len(history['epochs'])} epochs")
    seconds = meta.get("train_seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < float("inf"):
        raise CheckpointError(f"checkpoint {path!r} has train_seconds {seconds!r}, expected a finite number >= 0")
    history["train_seconds"] = float(seconds)
    return history


def _restore_opt_state(meta: dict, template: Any, params: list, optimizer: Any, restore, path: str) -> Any:
    """Rebuild the optimizer state in the layout of ``template`` (a fresh ``optimizer.init(params)``)."""
    t_meta, t_arrays = _opt_state_parts(template)
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path!r} has optimizer metadata of type {type(meta).__name__}, "
                              "expected a dict")
    if meta.get("kind") != t_meta["kind"]:
        raise CheckpointError(f"checkpoint {path!r} holds a {meta.get('kind')!r} optimizer state, "
                              f"this run needs {t_meta['kind']!r}")
    step = meta.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"checkpoint {path!r} has a bad optimizer step {step!r}")
    if t_meta["kind"] == "slots":
        from .chapter7 import SlotState

        slots = {k: [restore(f"opt/{k}/{i}", a) for i, a in enumerate(seq)] for k, seq in template.slots.items()}
        return SlotState(step, slots)
    adam_state = template.state if t_meta["kind"] == "adam_inplace" else template
    groups = {}
    for key in ("v", "s", "master", "s_max"):
        like = getattr(adam_state, key)
        present = key in ("v", "s") or bool(meta.get(key))
        if present and like is None:  # e.g. an AMSGrad s_max the fresh state makes lazily
            like = adam_state.v
        groups[key] = [restore(f"opt/{key}/{i}", a) for i, a in enumerate(like)] if present else None
    try:
        state = _adam.AdamState(step, groups["v"], groups["s"], meta.get("skipped", 0), master=groups["master"],
                                s_max=groups["s_max"], mu_product=meta.get("mu_product", 1.0))
        config = optimizer.config
        _adam._validate(params, state, params, config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path!r} has an optimizer state that does not fit: {exc}") from None
    if t_meta["kind"] == "adam":
        return state
    opt = optimizer.init(params)  # an adam_np.Adam over the restored arrays
    opt.state = state
    return opt
