"""Dask on a ``dask.distributed`` client: cutting the task history behind the optimizer's persisted arrays.

Each step of :class:`adam_np.Adam` on Dask arrays persists its new arrays; the scheduler keeps every earlier task
of their history, to recompute a chunk lost with its worker, so its memory and the time per step grow with the
number of steps. Every :data:`adam_np.optimizer.LINEAGE_STEPS` steps the optimizer calls :func:`cut_history`,
which re-keys the chunks as tasks without dependencies so that the scheduler can forget that history.
"""

from __future__ import annotations

import uuid
from typing import Any

from .core._xp import _wait_or_raise

__all__ = ["cut_history"]


def cut_history(groups: list) -> list:
    """Let each worker re-key the chunks it holds as tasks without dependencies; the same structure back.

    Without a distributed client (Dask's local schedulers keep no history) the groups come back unchanged.
    A chunk lost with its worker after a cut cannot be recomputed: its task fails, naming the lost chunk and
    whether its worker left the cluster or the chunk was released. The new keys are unique to this call
    (``adam_np-cut-<random token>``): never those of another array, so neither another array's history on the
    scheduler nor its release can touch them. A re-keying task that the scheduler runs on a worker without the
    chunk (work stealing moves such tasks to an idle worker) fetches it from a worker that holds it.

    Parameters
    ----------
    groups : list of (list of dask.array.Array or None) or None
        Persisted arrays (waited for here), grouped as :func:`adam_np.core._xp.persist_groups` returns them,
        e.g. ``[params, v, s, master, s_max]``; a group or an entry may be None.

    Returns
    -------
    list
        The groups, each array replaced by one backed by one computed chunk per task.

    Examples
    --------
    >>> import dask.array as da
    >>> (x,), missing = cut_history([[da.ones(4, chunks=2).persist()], None])
    >>> float(x.sum().compute()), missing
    (4.0, None)
    """
    try:
        from distributed import futures_of, get_client, wait

        client = get_client()
    except (ImportError, ValueError):  # no distributed client: nothing kept for recomputation
        return groups
    arrays = [a for xs in groups if xs is not None for a in xs if a is not None]
    futures = [futures_of(a) for a in arrays]
    _wait_or_raise([f for fs in futures for f in fs], wait)
    holders = client.who_has([f for fs in futures for f in fs])
    adopted = []
    for a, fs in zip(arrays, futures):
        # A fresh token: deterministic keys (same inputs, same name) would let this array's cut keys coincide with
        # those another array's history still holds on the scheduler, whose task (and worker restriction) wins.
        name = f"adam_np-cut-{uuid.uuid4().hex}"
        graph = {}
        for f in fs:
            key = (name, *f.key[1:])
            graph[key] = client.submit(_own_chunk, f.key, list(holders[f.key]), key=key, pure=False,
                                       workers=list(holders[f.key]),
                                       allow_other_workers=True)  # loose: a rerun after the worker is lost fails
        adopted.append(type(a)(graph, name, a.chunks, meta=a._meta))
    _wait_or_raise([f for a in adopted for f in a.__dask_graph__().values()], wait)
    done = iter(adopted)
    return [None if xs is None else [None if a is None else next(done) for a in xs] for xs in groups]


def _own_chunk(key: Any, holders: list) -> Any:  # pragma: no cover - runs on a worker
    """A chunk held under ``key``, returned as the result of a task without dependencies.

    From the running worker's memory; else (work stealing moved the task off ``holders``, the workers that held
    the chunk at the cut) fetched from a worker the scheduler says holds it. Raises RuntimeError when none does,
    saying whether a worker of ``holders`` left the cluster or the chunk was released.
    """
    from distributed import get_worker
    from distributed.utils import sync
    from distributed.utils_comm import gather_from_workers

    worker = get_worker()
    try:
        return worker.data[key]
    except KeyError:
        pass
    who_has = next(iter(sync(worker.loop, worker.scheduler.who_has, keys=[key]).values()), [])
    if who_has:
        data, *_ = sync(worker.loop, gather_from_workers, {key: who_has}, worker.rpc, who=worker.address)
        if data:
            return next(iter(data.values()))
    raise RuntimeError(_lost_chunk_message(key, holders, sync(worker.loop, worker.scheduler.identity)["workers"]))


def _lost_chunk_message(key: Any, holders: list, workers: Any) -> str:
    """Why chunk ``key`` (held by ``holders`` when the history was cut) is gone, given the cluster's ``workers``."""
    lost = sorted(set(holders) - set(workers))
    if lost:
        why = (f"the worker that held it ({', '.join(lost)}) left the cluster after the task history was cut, so it "
               "cannot be recomputed")
    else:
        why = (f"it was released (no worker was lost: {', '.join(sorted(holders)) or 'its worker'} is still in the "
               "cluster), so it cannot be recomputed")
    return f"chunk {key!r} is no longer on any worker: {why}; restore the last checkpoint"
