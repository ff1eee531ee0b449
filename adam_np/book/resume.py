"""Checkpoints of a whole training run, so that an interrupted run resumes bit for bit.

A run of :func:`adam_np.book.train.run_train` is fully described by its :class:`~adam_np.book.train.TrainState`
(parameters, optimizer state, the one data-order generator, the epoch's order and the position in
it, the loss history) plus the settings it was started with. :func:`save_run` writes all of it as one
:mod:`adam_np.checkpoint` (atomic, checksummed ``.npz``): the Adam state as the checkpoint's optimizer, the
rest as its ``extra``; :func:`load_run` reads it back after checking that the settings, the data and the
optimizer state's layout match the run being resumed. :mod:`adam_np.cluster.train` saves its runs with the
same functions.

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
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import checkpoint
from ..checkpoint import CheckpointError
from ..core import adam as _adam
from ..core._xp import array_namespace, to_numpy
from .train import TrainState

__all__ = ["data_fingerprint", "load_run", "save_run"]

_POSITION = ("epoch", "batch", "examples_seen")


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
    save(path, state, optimizer, data_fingerprint(features, labels), settings)


def save(path: Any, state: TrainState, optimizer: Any, data: str, settings: dict | None, **extra: Any) -> None:
    """:func:`save_run` for data identified by ``data`` (a fingerprint), with more ``extra`` run state."""
    from ..optimizer import Adam
    from .chapter7 import SlotState

    if not isinstance(state, TrainState):
        raise TypeError(f"state must be a TrainState, got {type(state).__name__}")
    extra.update(run=_run_identity(optimizer, data, settings), epoch=state.epoch, batch=state.batch,
                 examples_seen=state.examples_seen, train_seconds=state.train_seconds,
                 losses=np.asarray(state.losses, dtype=np.float64), epochs=np.asarray(state.epochs, dtype=np.float64))
    if state.order is not None:
        extra["order"] = np.asarray(state.order, dtype=np.int64)
    opt = state.opt_state
    if isinstance(opt, _adam.AdamState):  # the pure rule's state: saved as that of an Adam over copies
        adam = Adam([np.array(to_numpy(p, f"params[{i}]")) for i, p in enumerate(state.params)],
                    config=optimizer.config)
        adam.state, opt = opt, adam
    elif isinstance(opt, SlotState):  # a chapter-7 rule: parameters and slots go in extra
        extra.update({f"param/{i}": np.array(to_numpy(p, f"params[{i}]")) for i, p in enumerate(state.params)},
                     slots_step=int(opt.step))
        extra.update({f"slot/{k}/{i}": np.array(to_numpy(a, f"state.slots[{k!r}][{i}]"))
                      for k, seq in opt.slots.items() for i, a in enumerate(seq)})
        opt = None
    elif not isinstance(opt, Adam):
        raise TypeError(f"cannot checkpoint an optimizer state of type {type(opt).__name__}")
    checkpoint.save(path, opt, rng=state.rng, extra=extra)


def _run_identity(optimizer: Any, data: str, settings: dict | None) -> dict:
    """What makes a run this run: the rule, its hyper-parameters, the data's fingerprint ``data``, the settings."""
    if settings is not None and not isinstance(settings, dict):
        raise TypeError(f"settings must be a dict, got {type(settings).__name__}")
    hyper = {k: (None if callable(v) else v) for k, v in optimizer.hyperparams().items()}
    identity = {"optimizer": optimizer.name, "hyperparams": hyper, "data": data, "settings": dict(settings or {})}
    try:
        return json.loads(json.dumps(identity))  # what a JSON round trip gives, for comparison on load
    except (TypeError, ValueError) as exc:
        raise TypeError(f"settings must be JSON-serializable: {exc}") from None


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
    from .train import init_train

    xp = array_namespace(features, labels, name="features and labels")
    device = getattr(features, "device", None)
    like = init_train(optimizer, features, labels, seed=0).params  # layout, dtypes and device of a fresh run
    return load(path, optimizer, like, data_fingerprint(features, labels), settings, features.shape[0],
                lambda a: xp.asarray(a, device=device) if device is not None else xp.asarray(a))


def load(path: Any, optimizer: Any, like: list, data: str, settings: dict | None, n: int,
         convert: Callable = np.asarray, *, ordered: bool = True,
         check: Callable[[str, dict], None] | None = None, keys: tuple = ()) -> TrainState:
    """:func:`load_run` for parameters like ``like``, data identified by ``data`` of ``n`` examples, arrays made
    by ``convert``; ``ordered``: the run keeps each epoch's order; ``check(path, extra)`` checks ``keys``."""
    from ..optimizer import Adam
    from .chapter7 import SlotState

    ck = checkpoint.read(path)
    path, extra, settings = ck.path, ck.extra, dict(settings or {})
    _check_identity(path, extra.get("run"), _run_identity(optimizer, data, settings))
    if check is not None:
        check(path, extra)
    template = optimizer.init(like)
    slots = isinstance(template, SlotState)
    known = {"run", *_POSITION, "train_seconds", "losses", "epochs", *keys, *(["order"] if ordered else [])}
    if slots:
        known |= {"slots_step", *(f"param/{i}" for i in range(len(like))),
                  *(f"slot/{k}/{i}" for k, seq in template.slots.items() for i in range(len(seq)))}
    if set(extra) - known:
        raise CheckpointError(f"checkpoint {path!r} has unexpected members {sorted(set(extra) - known)}")
    if slots != (ck.config is None):
        raise CheckpointError(f"checkpoint {path!r} holds {'an' if slots else 'no'} Adam state, this run's "
                              f"{optimizer.name!r} needs {'none' if slots else 'one'}")

    def restore(name: str, like: Any) -> Any:
        a, expected = extra.get(name), to_numpy(like, name)
        if not isinstance(a, np.ndarray) or a.shape != expected.shape or a.dtype != expected.dtype:
            raise CheckpointError(f"checkpoint {path!r}: {name} is missing or has the wrong shape or dtype, expected "
                                  f"{expected.shape} and {expected.dtype}")
        return convert(a)

    rng = np.random.default_rng()
    if slots:
        params = [restore(f"param/{i}", p) for i, p in enumerate(like)]
        step = extra.get("slots_step")
        if not _count(step):
            raise CheckpointError(f"checkpoint {path!r} has a bad optimizer step {step!r}")
        opt_state = SlotState(step, {k: [restore(f"slot/{k}/{i}", a) for i, a in enumerate(seq)]
                                     for k, seq in template.slots.items()})
        checkpoint.load(ck, rng=rng)
    else:
        adam = Adam([np.array(to_numpy(p, f"params[{i}]")) for i, p in enumerate(like)], config=optimizer.config)
        checkpoint.load(ck, adam, rng=rng)
        params, st = [convert(p) for p in adam.params], adam.state
        opt_state = st._replace(**{k: None if getattr(st, k) is None else [convert(a) for a in getattr(st, k)]
                                   for k in ("v", "s", "master", "s_max")})
        if isinstance(template, Adam):  # an in-place rule: an adam_np.Adam over the restored arrays
            adam = optimizer.init(params)
            adam.state, opt_state = opt_state, adam
    order = extra.get("order")
    if order is not None and (not isinstance(order, np.ndarray) or order.shape != (n,)
                              or not np.array_equal(np.sort(order), np.arange(n))):
        raise CheckpointError(f"checkpoint {path!r} has an 'order' that is not a permutation of {n} examples")
    position = {k: extra.get(k) for k in _POSITION}
    if not all(map(_count, position.values())):
        raise CheckpointError(f"checkpoint {path!r} has a bad loop position {position}")
    _check_position(path, position, order, n, settings, ordered)
    history = _check_history(path, extra)
    return TrainState(params=params, opt_state=opt_state, rng=rng, order=order, **history, **position)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_identity(path: str, saved: Any, current: dict) -> None:
    """A :class:`CheckpointError` naming the first of settings, optimizer, hyper-parameters, data that differs."""
    if not isinstance(saved, dict):
        raise CheckpointError(f"checkpoint {path!r} has a run identity of type {type(saved).__name__}, expected a "
                              "dict: not a run checkpoint of this package, or edited")
    for key in ("settings", "optimizer", "hyperparams", "data"):
        if saved.get(key) != current[key]:
            what = f"{key}: saved {saved.get(key)!r}, now {current[key]!r}" if key != "data" else "the data differ"
            raise CheckpointError(f"checkpoint {path!r} is from another run ({what})")


def _int_setting(settings: dict, key: str) -> int | None:
    value = settings.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def _check_position(path: str, position: dict, order: Any, n: int, settings: dict, ordered: bool) -> None:
    """The loop position must be one the loop can reach: ``epoch``/``batch``/``examples_seen`` agree."""
    epoch, batch, seen = position["epoch"], position["batch"], position["examples_seen"]
    if batch > 0 and order is None and ordered:
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


def _check_history(path: str, extra: dict) -> dict:
    """``losses``/``epochs`` (1-D, same length, float) and ``train_seconds`` (a finite number >= 0)."""
    history = {}
    for key in ("losses", "epochs"):
        a = extra.get(key)
        if not isinstance(a, np.ndarray):
            raise CheckpointError(f"checkpoint {path!r} lacks {key!r}")
        if a.ndim != 1 or a.dtype != np.float64:
            raise CheckpointError(f"checkpoint {path!r}: {key} has shape {a.shape} and dtype {a.dtype}, "
                                  "expected 1-D float64")
        history[key] = a.tolist()
    if len(history["losses"]) != len(history["epochs"]):
        raise CheckpointError(f"checkpoint {path!r} has {len(history['losses'])} losses but "
                              f"{len(history['epochs'])} epochs")
    seconds = extra.get("train_seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < float("inf"):
        raise CheckpointError(f"checkpoint {path!r} has train_seconds {seconds!r}, expected a finite number >= 0")
    history["train_seconds"] = float(seconds)
    return history
