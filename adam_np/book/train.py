r"""The D2L chapter-7 training loop (``train_ch7``) for any rule of :mod:`adam_np.book.chapter7`.

A linear model :math:`\hat y = Xw + b` starts from :math:`w \sim \mathcal N(0, 0.01^2)` of shape (d, 1)
and :math:`b = 0`; each epoch visits the examples in a fresh random order in mini-batches; the loss
:math:`\frac1n\sum_i \frac12(\hat y_i - y_i)^2` over the whole set is recorded at the start and every
``eval_every`` examples, with the x-axis in epochs, as in the book's figure.

The loop keeps everything it needs to continue in one :class:`TrainState`: parameters, optimizer
state, the single :class:`numpy.random.Generator` that draws the initial weights and every epoch's
order, the current epoch's order and the position in it. :func:`train_ch7` is
:func:`init_train` followed by :func:`run_train`; calling :func:`run_train` again on a state
continues where it stopped (``on_step`` may stop it, e.g. to save a checkpoint).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core._xp import array_namespace, to_numpy
from .linreg import _grad_squared_loss, _linreg, _squared_loss

__all__ = ["TrainResult", "TrainState", "init_train", "result_of", "run_train", "train_ch7"]


@dataclass
class TrainState:
    """Everything the training loop needs to go on: the explicit loop position and one RNG.

    Attributes
    ----------
    params : list of array
        ``[w, b]`` (shapes (d, 1) and (1,)).
    opt_state : object
        The rule's state (``rule.init(params)``).
    rng : numpy.random.Generator
        The only source of randomness: initial ``w``, then one permutation per epoch.
    epoch : int
        Epochs completed.
    batch : int
        Mini-batches completed within the current epoch.
    order : numpy.ndarray or None
        The current epoch's permutation of the examples (None between epochs: the next one is
        drawn from ``rng`` when the epoch starts).
    examples_seen : int
        Examples processed in all updates so far.
    losses, epochs : list of float
        Loss history and its x-axis (``examples_seen / n``).
    train_seconds : float
        Time spent in updates (evaluation excluded, as the book's timer).

    Examples
    --------
    >>> from adam_np.book.chapter7 import SGD
    >>> from adam_np.book.data import make_synthetic
    >>> X, y, _, _ = make_synthetic(n=30, d=2)
    >>> state = init_train(SGD(), X, y, seed=0)
    >>> state = run_train(state, SGD(), X, y, on_step=lambda s: s.batch == 2)   # stop mid-epoch
    >>> state.epoch, state.batch, state.examples_seen, state.order.shape
    (0, 2, 20, (30,))
    """

    params: list
    opt_state: Any
    rng: np.random.Generator
    epoch: int = 0
    batch: int = 0
    order: np.ndarray | None = None
    examples_seen: int = 0
    losses: list = field(default_factory=list)
    epochs: list = field(default_factory=list)
    train_seconds: float = 0.0


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_ch7` returns.

    Attributes
    ----------
    optimizer : str
        The rule's name.
    losses : tuple of float
        Loss over the whole set at each record.
    epochs : tuple of float
        The x-axis of ``losses`` in epochs (examples seen / n).
    examples_seen : int
    num_epochs : int
    sec_per_epoch : float
        Update time per epoch (evaluation excluded).
    params : tuple of array
        Final ``(w, b)``.

    Examples
    --------
    >>> from adam_np.book.chapter7 import SGD
    >>> from adam_np.book.data import make_synthetic
    >>> X, y, _, _ = make_synthetic(n=40, d=2)
    >>> r = train_ch7(SGD(), X, y, seed=0, eval_every=20)
    >>> r.optimizer, r.epochs, r.line().startswith("loss: ")
    ('sgd', (0.0, 0.5, 1.0, 1.5, 2.0), True)
    """

    optimizer: str
    losses: tuple
    epochs: tuple
    examples_seen: int
    num_epochs: int
    sec_per_epoch: float
    params: tuple

    @property
    def final_loss(self) -> float:
        """The last recorded loss.

        Returns
        -------
        float
        """
        return self.losses[-1]

    def line(self) -> str:
        """The book's summary line, ``loss: %f, %f sec per epoch``.

        Returns
        -------
        str
        """
        return f"loss: {self.final_loss:f}, {self.sec_per_epoch:f} sec per epoch"

    def to_dict(self) -> dict:
        """JSON-ready dict: everything but the arrays, which become nested lists of floats.

        Returns
        -------
        dict
        """
        w, b = (np.asarray(to_numpy(p), dtype=np.float64) for p in self.params)
        return {
            "optimizer": self.optimizer, "final_loss": self.final_loss, "sec_per_epoch": self.sec_per_epoch,
            "num_epochs": self.num_epochs, "examples_seen": self.examples_seen,
            "losses": list(self.losses), "epochs": list(self.epochs),
            "w": w[:, 0].tolist(), "b": float(b[0]),
        }


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _check_data(features: Any, labels: Any) -> Any:
    xp = array_namespace(features, labels, name="features, labels")
    if features.ndim != 2 or labels.ndim != 1 or labels.shape[0] != features.shape[0]:
        raise ValueError(f"features must be (n, d) and labels (n,), got {tuple(features.shape)} "
                         f"and {tuple(labels.shape)}")
    if features.dtype != labels.dtype or not xp.isdtype(features.dtype, "real floating"):
        raise TypeError(f"features and labels must share one real floating dtype, got {features.dtype} "
                        f"and {labels.dtype}")
    finite = xp.logical_and(xp.all(xp.isfinite(features), axis=1), xp.isfinite(labels))
    if not bool(xp.all(finite)):
        rows = np.flatnonzero(~np.asarray(to_numpy(finite)))
        raise ValueError(f"features and labels must be finite: {rows.size} rows hold NaN or inf, "
                         f"e.g. rows {rows[:5].tolist()}")
    return xp


def _loss(features: Any, labels: Any, params: list, *, xp: Any) -> float:
    return float(_squared_loss(_linreg(features, params[0], params[1], xp=xp), labels, xp=xp))


def init_train(optimizer: Any, features: Any, labels: Any, seed: int | None = None) -> TrainState:
    r"""Initial parameters, optimizer state, RNG and the first loss record.

    Parameters
    ----------
    optimizer : rule
        Anything with ``init(params)`` and ``update(grads, state, params)`` (see :mod:`adam_np.book.chapter7`).
    features : array, shape (n, d)
    labels : array, shape (n,)
    seed : int, optional
        Seed of ``numpy.random.default_rng``; None draws fresh entropy.

    Returns
    -------
    TrainState
        ``w ~ N(0, 0.01²)`` of shape (d, 1), ``b = 0``, ``losses`` holding the initial loss.

    Raises
    ------
    ValueError
        If the shapes do not match, or the data hold NaN or inf (naming the rows); :func:`run_train` checks the
        same, so NaN data never train silently with any rule.

    Examples
    --------
    >>> from adam_np.book.chapter7 import SGD
    >>> from adam_np.book.data import make_synthetic
    >>> X, y, _, _ = make_synthetic(n=20, d=3)
    >>> state = init_train(SGD(), X, y, seed=0)
    >>> [tuple(p.shape) for p in state.params], state.epochs
    ([(3, 1), (1,)], [0.0])
    """
    xp = _check_data(features, labels)
    rng = np.random.default_rng(seed)
    w = xp.asarray(rng.normal(0.0, 0.01, size=(features.shape[1], 1)), dtype=features.dtype)
    b = xp.zeros((1,), dtype=features.dtype)
    if hasattr(features, "device"):
        w, b = xp.asarray(w, device=features.device), xp.asarray(b, device=features.device)
    params = [w, b]
    state = TrainState(params=params, opt_state=optimizer.init(params), rng=rng)
    state.losses.append(_loss(features, labels, params, xp=xp))
    state.epochs.append(0.0)
    return state


def run_train(state: TrainState, optimizer: Any, features: Any, labels: Any, batch_size: int = 10,
              num_epochs: int = 2, *, eval_every: int = 100,
              on_step: Callable[[TrainState], bool | None] | None = None) -> TrainState:
    r"""Run (or continue) mini-batch training until ``num_epochs`` epochs are complete.

    Each step takes the next ``batch_size`` examples of the epoch's order (the last batch may be
    smaller), computes :func:`adam_np.book.linreg.grad_squared_loss` by hand and applies
    ``optimizer.update``. Whenever ``examples_seen`` passes a multiple of ``eval_every``, the loss
    over the whole set is appended to ``state.losses`` with x-coordinate ``examples_seen / n``
    (and once more at the end if the last step was not recorded).

    Parameters
    ----------
    state : TrainState
        From :func:`init_train` or a previous, interrupted call.
    optimizer : rule
        The same rule that made ``state.opt_state``.
    features, labels : array
        The same data as for :func:`init_train`.
    batch_size : int, default 10
    num_epochs : int, default 2
        Total epochs, counting those already in ``state``.
    eval_every : int, default 100
        Examples between loss records.
    on_step : callable, optional
        Called as ``on_step(state)`` after every update; returning True stops the loop at once
        (``state`` then continues exactly from there).

    Returns
    -------
    TrainState
        The same object, advanced.

    Examples
    --------
    >>> from adam_np.book.chapter7 import SGD
    >>> from adam_np.book.data import make_synthetic
    >>> X, y, _, _ = make_synthetic(n=20, d=3)
    >>> state = init_train(SGD(), X, y, seed=0)
    >>> state = run_train(state, SGD(), X, y, batch_size=5, num_epochs=1, eval_every=10)
    >>> state.examples_seen, state.epoch, state.epochs
    (20, 1, [0.0, 0.5, 1.0])
    """
    batch_size = _positive_int("batch_size", batch_size)
    num_epochs = _positive_int("num_epochs", num_epochs)
    eval_every = _positive_int("eval_every", eval_every)
    xp = _check_data(features, labels)
    n = features.shape[0]
    batches = math.ceil(n / batch_size)
    params, opt_state = state.params, state.opt_state
    device = getattr(features, "device", None)
    clock = time.perf_counter
    while state.epoch < num_epochs:
        if state.order is None:
            state.order = state.rng.permutation(n)
        order = xp.asarray(state.order) if device is None else xp.asarray(state.order, device=device)
        # One gather per epoch; each mini-batch is then a contiguous slice of the shuffled copy.
        shuffled_X = xp.take(features, order, axis=0)
        shuffled_y = xp.reshape(xp.take(labels, order, axis=0), (n, 1))  # a column, as the gradient wants it
        while state.batch < batches:
            start = clock()
            lo, hi = state.batch * batch_size, (state.batch + 1) * batch_size
            X, y = shuffled_X[lo:hi, ...], shuffled_y[lo:hi, ...]
            grads = _grad_squared_loss(X, y, params[0], params[1], xp=xp)
            params, opt_state = optimizer.update(list(grads), opt_state, params)
            before = state.examples_seen
            state.examples_seen += X.shape[0]
            state.batch += 1
            state.params, state.opt_state = params, opt_state
            state.train_seconds += clock() - start
            if state.examples_seen // eval_every > before // eval_every:
                state.losses.append(_loss(features, labels, params, xp=xp))
                state.epochs.append(state.examples_seen / n)
            if on_step is not None and on_step(state):
                return state
        state.epoch += 1
        state.batch = 0
        state.order = None
    if state.epochs[-1] != state.examples_seen / n:
        state.losses.append(_loss(features, labels, params, xp=xp))
        state.epochs.append(state.examples_seen / n)
    return state


def train_ch7(optimizer: Any, features: Any, labels: Any, batch_size: int = 10, num_epochs: int = 2,
              seed: int | None = None, *, eval_every: int = 100,
              on_step: Callable[[TrainState], bool | None] | None = None) -> TrainResult:
    r"""Train the linear model with ``optimizer`` as D2L's ``train_ch7`` does.

    Parameters
    ----------
    optimizer : rule
        A rule of :mod:`adam_np.book.chapter7` (e.g. ``AdamRule()``, ``make_optimizer("rmsprop")``) or
        anything with the same ``init`` / ``update``.
    features : array, shape (n, d)
        Any array-API library (NumPy, CuPy, torch, ``array_api_strict``); the computation stays on it.
    labels : array, shape (n,)
    batch_size : int, default 10
    num_epochs : int, default 2
    seed : int, optional
        Seeds the one RNG of the run (initial ``w`` and every epoch's order).
    eval_every : int, default 100
        Examples between loss records.
    on_step : callable, optional
        See :func:`run_train`.

    Returns
    -------
    TrainResult

    Examples
    --------
    >>> from adam_np.book.chapter7 import AdamRule
    >>> from adam_np.book.data import make_synthetic
    >>> X, y, w_true, b_true = make_synthetic(noise=0.1)
    >>> result = train_ch7(AdamRule(), X, y, seed=0)
    >>> result.examples_seen, len(result.losses), result.epochs[-1]
    (3000, 31, 2.0)
    >>> result.final_loss < 0.01        # noise 0.1 gives a least loss of about 0.005
    True
    """
    state = init_train(optimizer, features, labels, seed=seed)
    state = run_train(state, optimizer, features, labels, batch_size, num_epochs, eval_every=eval_every,
                      on_step=on_step)
    return result_of(state, optimizer, num_epochs)


def result_of(state: TrainState, optimizer: Any, num_epochs: int) -> TrainResult:
    """The :class:`TrainResult` of a finished (or stopped) :class:`TrainState`.

    Parameters
    ----------
    state : TrainState
    optimizer : rule
    num_epochs : int

    Returns
    -------
    TrainResult

    Examples
    --------
    >>> from adam_np.book.chapter7 import SGD
    >>> from adam_np.book.data import make_synthetic
    >>> X, y, _, _ = make_synthetic(n=20, d=3)
    >>> result_of(init_train(SGD(), X, y, seed=0), SGD(), 1).examples_seen
    0
    """
    done = state.epoch + (state.batch > 0)
    return TrainResult(
        optimizer=getattr(optimizer, "name", type(optimizer).__name__),
        losses=tuple(state.losses), epochs=tuple(state.epochs), examples_seen=state.examples_seen,
        num_epochs=num_epochs, sec_per_epoch=state.train_seconds / max(done, 1),
        params=tuple(state.params),
    )
