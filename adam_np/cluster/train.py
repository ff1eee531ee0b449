r"""Synchronous data-parallel Adam on data that outgrows memory: the D2L linear model on a Dask cluster.

Where things run::

    client (this process)                     workers (each holds some row chunks of X, y)
    ---------------------                     --------------------------------------------
    w (d x 1), b, Adam's v, s   --- w, b -->  per chunk piece of the batch:  X_p^T r_p, sum r_p
    optimizer.update(g, ...)    <-- g ----    reduce the pieces: g = (sum of partials) / m
                                              (r = X_p w + b - y_p, the rows of the batch in that chunk)

Only the small parameters and moments live on the client; each step's gradient
(:func:`adam_np.book.linreg.grad_squared_loss`'s formula) is computed on the workers that hold the batch's
rows and reduced there, and only the (d + 1) numbers of the gradient come back.

Batches (:class:`Plan`): each epoch visits the row chunks in a seeded random order and the rows of each chunk
in a seeded random order; batches are consecutive slices of that order, so a batch lies in one chunk or
spans two neighbours, and each chunk is read once per epoch (the next one is loaded while the current one is
used). The order depends only on the seed and the chunking, not on the number of workers.

Exactness: for a batch within one chunk the workers compute ``X.mT @ r`` and ``sum(r)`` on exactly the rows
the in-memory run takes, so the step is bit for bit the in-memory step; a batch across two chunks sums two
partial products, which differs from one product by the rounding of that sum (tested: <= 1e-12 normwise
in float64 over an epoch). The loss over the whole set is recorded at the start and after each epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import dask
import numpy as np

from ..book import resume
from ..book.train import TrainState
from ..checkpoint import CheckpointError
from .data import content_fingerprint

__all__ = ["NonFiniteData", "Plan", "batch_gradient", "init_cluster_train",
           "load_cluster_run", "run_cluster_train", "save_cluster_run", "whole_loss"]

PREFETCH = 2
"""Chunks loaded ahead of the one in use (each on some worker: with two workers both read while one computes)."""


class Plan:
    """The batches of every epoch for data in row chunks of ``chunk_sizes``.

    Parameters
    ----------
    chunk_sizes : sequence of int
        Rows per chunk, in row order.
    batch_size : int
    seed : int
        With the epoch number, the only source of the order.

    Examples
    --------
    >>> plan = Plan([4, 4, 2], batch_size=3, seed=0)
    >>> plan.batches, [len(plan.pieces(0, b)) for b in range(plan.batches)]
    (4, [2, 1, 1, 1])
    >>> sorted(np.concatenate([plan.rows(0, b) for b in range(plan.batches)]).tolist()) == list(range(10))
    True
    """

    def __init__(self, chunk_sizes: Any, batch_size: int, seed: int) -> None:
        self.sizes = np.asarray(chunk_sizes, dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.n = int(self.sizes.sum())
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.batches = math.ceil(self.n / self.batch_size)
        self._epoch: tuple | None = None
        self._perm: tuple | None = None

    def chunk_order(self, epoch: int) -> np.ndarray:
        """The order in which ``epoch`` visits the chunks.

        Parameters
        ----------
        epoch : int

        Returns
        -------
        numpy.ndarray
        """
        if self._epoch is None or self._epoch[0] != epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.sizes))
            self._epoch = (epoch, order, np.cumsum(self.sizes[order]))
        return self._epoch[1]

    def _rows_of_chunk(self, epoch: int, k: int) -> np.ndarray:
        if self._perm is None or self._perm[:2] != (epoch, k):
            self._perm = (epoch, k, np.random.default_rng([self.seed, epoch, int(k), 1]).permutation(self.sizes[k]))
        return self._perm[2]

    def pieces(self, epoch: int, batch: int) -> list[tuple[int, np.ndarray]]:
        """Batch ``batch`` of ``epoch`` as ``(chunk, rows within the chunk)`` pieces, in batch order.

        Parameters
        ----------
        epoch, batch : int

        Returns
        -------
        list of (int, numpy.ndarray)
        """
        order = self.chunk_order(epoch)
        ends = self._epoch[2]
        lo, hi = batch * self.batch_size, min((batch + 1) * self.batch_size, self.n)
        out = []
        j = int(np.searchsorted(ends, lo, side="right"))
        while lo < hi:
            k = int(order[j])
            start = int(ends[j] - self.sizes[k])
            stop = min(hi, int(ends[j]))
            out.append((k, self._rows_of_chunk(epoch, k)[lo - start:stop - start]))
            lo, j = stop, j + 1
        return out

    def positions(self, epoch: int, batch: int) -> list[int]:
        """The positions (in the epoch's chunk order) of the chunks batch ``batch`` reads.

        Parameters
        ----------
        epoch, batch : int

        Returns
        -------
        list of int
        """
        self.chunk_order(epoch)
        ends = self._epoch[2]
        lo, hi = batch * self.batch_size, min((batch + 1) * self.batch_size, self.n)
        first = int(np.searchsorted(ends, lo, side="right"))
        last = int(np.searchsorted(ends, hi - 1, side="right"))
        return list(range(first, last + 1))

    def rows(self, epoch: int, batch: int) -> np.ndarray:
        """Batch ``batch`` of ``epoch`` as global row numbers, in batch order (for in-memory runs).

        Parameters
        ----------
        epoch, batch : int

        Returns
        -------
        numpy.ndarray
        """
        return np.concatenate([self.starts[k] + local for k, local in self.pieces(epoch, batch)])


def _partial(chunk: tuple, local: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple:
    """On a worker: ``X_p^T r_p`` and ``sum r_p`` over rows ``local`` of one chunk (as the book's gradient)."""
    Xc, yc = chunk
    X = Xc[local]
    r = X @ w + b - np.reshape(yc[local], (X.shape[0], 1))
    return X.mT @ r, np.sum(r, axis=0)


def _reduce(parts: list, m: int) -> tuple:
    """On a worker: the batch gradient from its pieces, divided by the batch size as the book divides."""
    gw, gb = parts[0]
    for pw, pb in parts[1:]:
        gw, gb = gw + pw, gb + pb
    return gw / float(m), gb / float(m)


def _gradient(chunk: tuple, local: np.ndarray, w: np.ndarray, b: np.ndarray, m: int) -> tuple:
    """On a worker: the whole gradient of a batch that lies in one chunk (:func:`_partial`, then :func:`_reduce`)."""
    return _reduce([_partial(chunk, local, w, b)], m)


def batch_gradient(X: np.ndarray, y: np.ndarray, plan: Plan, epoch: int, batch: int, w: np.ndarray,
                   b: np.ndarray) -> tuple:
    """The in-memory twin of a cluster step's gradient: the same pieces, the same reduction, on NumPy arrays.

    Parameters
    ----------
    X, y : numpy.ndarray
        All the data, in memory.
    plan : Plan
    epoch, batch : int
    w, b : numpy.ndarray

    Returns
    -------
    tuple of numpy.ndarray
        ``(grad_w, grad_b)``.
    """
    pieces = plan.pieces(epoch, batch)
    parts = []
    for k, local in pieces:
        s, e = plan.starts[k], plan.starts[k] + plan.sizes[k]
        parts.append(_partial((X[s:e], y[s:e]), local, w, b))
    return _reduce(parts, sum(len(local) for _, local in pieces))


def whole_loss(X: Any, y: Any, w: np.ndarray, b: np.ndarray) -> float:
    """The book's loss over the whole set, :math:`\\tfrac1n\\sum (x_i w + b - y_i)^2/2`, computed on the workers.

    Parameters
    ----------
    X, y : dask.array.Array or numpy.ndarray
    w, b : numpy.ndarray

    Returns
    -------
    float
    """
    r = X @ w[:, 0] + b[0] - y
    total = (r * r / 2).sum() / X.shape[0]
    return float(total.compute() if hasattr(total, "compute") else total)


def init_cluster_train(optimizer: Any, X: Any, y: Any, seed: int) -> TrainState:
    """Initial ``w ~ N(0, 0.01²)`` (d, 1) and ``b = 0`` on the client (NumPy), the optimizer state, the first loss.

    Parameters
    ----------
    optimizer : rule
        As for :func:`adam_np.book.train.init_train`.
    X, y : dask.array.Array
    seed : int

    Returns
    -------
    TrainState
        ``order`` stays None: :class:`Plan` makes each epoch's order from the seed.
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 0.01, size=(X.shape[1], 1)).astype(X.dtype)
    b = np.zeros((1,), dtype=X.dtype)
    state = TrainState(params=[w, b], opt_state=optimizer.init([w, b]), rng=rng)
    state.losses.append(whole_loss(X, y, w, b))
    state.epochs.append(0.0)
    return state


class NonFiniteData(ValueError):
    """Rows of the data hold NaN or inf (the message names the chunk and rows)."""


def _bad_rows(chunk: tuple, local: np.ndarray) -> list:
    Xc, yc = chunk
    bad = ~(np.all(np.isfinite(Xc[local]), axis=1) & np.isfinite(yc[local]))
    return sorted(local[bad].tolist())[:5]


def run_cluster_train(state: TrainState, optimizer: Any, X: Any, y: Any, plan: Plan, num_epochs: int, client: Any,
                      *, on_step: Callable[[TrainState], bool | None] | None = None) -> TrainState:
    """Run (or continue) training on the cluster until ``num_epochs`` epochs are complete.

    Parameters
    ----------
    state : TrainState
        From :func:`init_cluster_train`, or a loaded checkpoint.
    optimizer : rule
    X, y : dask.array.Array
        Chunked along the rows as ``plan`` says.
    plan : Plan
    num_epochs : int
    client : distributed.Client
    on_step : callable, optional
        Called after each update; True stops the loop (``state`` then continues exactly from there).

    Returns
    -------
    TrainState
        Advanced (the same object).

    Raises
    ------
    NonFiniteData
        If a batch's gradient is not finite because the data are not (naming the chunk and rows), whatever
        the rule; the state is that of the last completed step.
    FloatingPointError
        If the gradient (or, under Adam's ``nonfinite="raise"``, the step) is not finite on finite data: the
        run diverged.
    """
    xblocks, yblocks = X.to_delayed().ravel(), y.to_delayed().ravel()
    loaded: dict = {}

    def chunk(k: int) -> Any:
        if k not in loaded:
            loaded[k] = client.compute(dask.delayed(tuple)([xblocks[k], yblocks[k]]))
        return loaded[k]

    params, opt_state = state.params, state.opt_state
    clock = time.perf_counter
    while state.epoch < num_epochs:
        order = plan.chunk_order(state.epoch)
        while state.batch < plan.batches:
            start = clock()
            positions = plan.positions(state.epoch, state.batch)
            ahead = range(positions[-1] + 1, min(positions[-1] + 1 + PREFETCH, len(order)))
            keep = {int(order[j]) for j in range(positions[0], ahead.stop)}
            for k in list(loaded):  # chunks the epoch has left behind
                if k not in keep:
                    del loaded[k]
            for j in ahead:  # prefetch: the next chunks load while this one works
                chunk(int(order[j]))
            pieces = plan.pieces(state.epoch, state.batch)
            w, b = (np.asarray(p) for p in params)
            m = sum(len(local) for _, local in pieces)
            if len(pieces) == 1:  # one task on the worker that holds the chunk: one round trip a step
                (k, local), = pieces
                grads = list(client.submit(_gradient, chunk(k), local, w, b, m, pure=False).result())
            else:
                parts = [client.submit(_partial, chunk(k), local, w, b, pure=False) for k, local in pieces]
                grads = list(client.submit(_reduce, parts, m, pure=False).result())
            try:
                if not all(np.all(np.isfinite(g)) for g in grads):  # every rule: NaN data never slips through
                    raise FloatingPointError("the gradient became NaN/inf")
                params, opt_state = optimizer.update(grads, opt_state, params)
            except FloatingPointError:
                bad = [(k, rows) for k, local in pieces
                       if (rows := client.submit(_bad_rows, chunk(k), local, pure=False).result())]
                if bad:
                    k, rows = bad[0]
                    raise NonFiniteData(
                        f"the data hold NaN or inf: chunk {k} (rows {int(plan.starts[k])} to "
                        f"{int(plan.starts[k] + plan.sizes[k]) - 1}), e.g. rows "
                        f"{[int(plan.starts[k]) + r for r in rows]}") from None
                raise
            state.examples_seen += m
            state.batch += 1
            state.params, state.opt_state = params, opt_state
            state.train_seconds += clock() - start
            if on_step is not None and on_step(state):
                return state
        state.epoch += 1
        state.batch = 0
        loaded.clear()
        state.losses.append(whole_loss(X, y, *(np.asarray(p) for p in params)))
        state.epochs.append(state.examples_seen / plan.n)
    return state


def save_cluster_run(path: Any, state: TrainState, optimizer: Any, data_meta: dict, settings: dict) -> None:
    """Write a cluster training run atomically: one :mod:`adam_np.checkpoint`, as :func:`adam_np.book.resume.save_run`.

    The data are identified by their layout's fingerprint (:func:`adam_np.cluster.data.open_data`) and their
    values' (``data_meta["content"]``, :func:`adam_np.cluster.data.content_fingerprint`: one short digest per
    row chunk), the epoch order by the seed in ``settings``: nothing of the data's size is stored.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` to write (replaced atomically).
    state : TrainState
    optimizer : rule
    data_meta : dict
        From :func:`adam_np.cluster.data.open_data`, with ``data_meta["content"] = content_fingerprint(X, y)``
        (:func:`load_cluster_run` sets it on a resumed run).
    settings : dict
        JSON-serializable: batch size, epochs, seed (what :func:`load_cluster_run` must be given again).

    Raises
    ------
    ValueError
        If ``data_meta`` holds no ``content`` fingerprint; nothing is written.
    """
    content = data_meta.get("content")
    if not isinstance(content, dict) or not isinstance(content.get("sha256"), str):
        raise ValueError("data_meta has no 'content' fingerprint of the data's values: set data_meta['content'] = "
                         "adam_np.cluster.data.content_fingerprint(X, y) before saving (the workers read the data "
                         "once), so that a resumed run can refuse changed data")
    resume.save(path, state, optimizer, data_meta["fingerprint"], settings, data_content=content)


def load_cluster_run(path: Any, optimizer: Any, X: Any, y: Any, data_meta: dict, settings: dict,
                     plan: Plan) -> TrainState:
    """Read a run written by :func:`save_cluster_run`; :func:`run_cluster_train` then continues bit for bit.

    Parameters
    ----------
    path : str or os.PathLike
    optimizer : rule
        The same rule and hyper-parameters.
    X, y : dask.array.Array
        The same data (checked by fingerprint).
    data_meta : dict
        From :func:`adam_np.cluster.data.open_data`. Its ``content`` fingerprint
        (:func:`adam_np.cluster.data.content_fingerprint`) is computed if absent (one read of the data, on the
        workers) and, once the checkpoint is accepted, kept there for :func:`save_cluster_run`.
    settings : dict
        Equal to those saved.
    plan : Plan
        This run's plan (for the loop position's check).

    Returns
    -------
    TrainState

    Raises
    ------
    CheckpointError
        On an unreadable, corrupt or truncated file, another version, or another run (naming what differs:
        for data whose values changed, the row chunks that differ).
    """
    content = data_meta.get("content")

    def check(path: str, extra: dict) -> None:
        nonlocal content
        if content is None:
            content = content_fingerprint(X, y)
        _check_content(path, extra.get("data_content"), content, X.chunks[0])

    d, dtype = X.shape[1], X.dtype
    state = resume.load(path, optimizer, [np.zeros((d, 1), dtype), np.zeros((1,), dtype)], data_meta["fingerprint"],
                        settings, plan.n, ordered=False, check=check, keys=("data_content",))
    data_meta["content"] = content
    return state


def _check_content(path: str, saved: Any, current: dict, row_chunks: tuple) -> None:
    """A :class:`CheckpointError` unless the data's values are those the checkpoint was made on, naming the row
    chunks of features (X) and labels (y) that differ."""
    if not isinstance(saved, dict) or not isinstance(saved.get("sha256"), str):
        raise CheckpointError(f"checkpoint {path!r} records no fingerprint of its data's values (written by an older "
                              "adam_np, or edited): the data cannot be checked; start a new run")
    if saved["sha256"] == current["sha256"]:
        return
    counts = [len(saved[k]) if isinstance(saved.get(k), list) else None for k in "Xy"]
    if counts != [len(current[k]) for k in "Xy"]:
        raise CheckpointError(f"checkpoint {path!r} is from another run (the data differ: {len(current['X'])} row "
                              f"chunks now, {counts[0]} when it was saved)")
    starts = np.concatenate([[0], np.cumsum(row_chunks)])
    differ = [f"{name} rows {int(starts[i])} to {int(starts[i + 1]) - 1}" for name in "Xy"
              for i, (a, b) in enumerate(zip(saved[name], current[name])) if a != b]
    more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
    raise CheckpointError(f"checkpoint {path!r} is from another run (the data's values differ from those it was "
                          f"saved with: {', '.join(differ[:3]) or 'their layout'}{more})")
