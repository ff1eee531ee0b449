"""A ``dask.distributed`` client on a cluster started in this process, or on an existing one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["local_client"]


@contextlib.contextmanager
def local_client(address: str | None = None, *, n_workers: int = 2, threads_per_worker: int = 1,
                 memory_limit: Any = "auto", processes: bool = False, **kwargs: Any) -> Iterator[Any]:
    """A :class:`distributed.Client`: on a new ``LocalCluster`` (shut down on exit), or on ``address``.

    Parameters
    ----------
    address : str, optional
        A running scheduler, e.g. ``"tcp://10.0.0.5:8786"``; then nothing is started or shut down.
    n_workers, threads_per_worker, memory_limit, processes
        For the ``LocalCluster`` (ignored with ``address``); ``processes=False`` keeps the workers in
        this process as threads (quick to start), ``True`` starts one process per worker with a nanny.
        With ``processes=False`` each worker's ``memory_limit`` is checked against this whole process's
        memory: a limit below it pauses the workers (``0`` turns the limit off).
    **kwargs
        Further ``LocalCluster`` arguments.

    Yields
    ------
    distributed.Client
        The client, also the default scheduler of ``dask.compute``/``persist`` inside the block.

    Examples
    --------
    >>> import dask.array as da, numpy as np, adam_np
    >>> from adam_np.cluster import local_client
    >>> with local_client(n_workers=2) as client:
    ...     x = da.from_array(np.linspace(-1.0, 1.0, 8), chunks=4)
    ...     opt = adam_np.Adam([x], lr=0.1)
    ...     opt.step([da.ones(8, chunks=4)])
    ...     print(opt.params[0].compute()[:2])
    [-1.1        -0.81428571]
    """
    from distributed import Client, LocalCluster

    if address is not None:
        with Client(address, **kwargs) as client:
            yield client
        return
    with LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, memory_limit=memory_limit,
                      processes=processes, dashboard_address=":0", **kwargs) as cluster, Client(cluster) as client:
        yield client
