"""A ``dask.distributed`` client on a cluster started in this process, or on an existing one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["local_client", "parse_memory_limit", "probe_scheduler"]


def parse_memory_limit(text: str) -> str:
    """Check a worker memory limit as ``LocalCluster`` reads it: ``auto``, ``0`` or a size such as ``2GiB``.

    Parameters
    ----------
    text : str

    Returns
    -------
    str
        ``text`` unchanged.

    Raises
    ------
    ValueError
        Naming the value, when Dask cannot read it as a size.

    Examples
    --------
    >>> parse_memory_limit("2GiB")
    '2GiB'
    >>> parse_memory_limit("lots")
    Traceback (most recent call last):
    ...
    ValueError: memory limit must be auto, 0 or a size such as 2GiB, got 'lots'
    """
    from dask.utils import parse_bytes

    if text != "auto":
        try:
            parse_bytes(text)
        except (ValueError, TypeError):
            raise ValueError(f"memory limit must be auto, 0 or a size such as 2GiB, got {text!r}") from None
    return text


def probe_scheduler(address: str, timeout: float = 10.0) -> None:
    """Check, within ``timeout`` seconds in all, that a Dask scheduler answers at ``address``.

    ``distributed.Client`` bounds the connection but not the handshake: a server that accepts the connection
    and never answers (an HTTP port) holds it indefinitely, and one that answers garbage fails with an
    unrelated error. This asks the server for its identity under one deadline.

    Parameters
    ----------
    address : str
        E.g. ``"tcp://10.0.0.5:8786"``.
    timeout : float, default 10
        Seconds for the connection, the handshake and the answer together.

    Raises
    ------
    OSError
        Naming the address and what was reached: nothing within the deadline, a server that is not a Dask
        scheduler, or a refused connection.
    """
    import asyncio

    from distributed.comm import connect

    async def identity() -> dict:
        comm = await connect(address, timeout=timeout)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    async def bounded() -> dict:
        return await asyncio.wait_for(identity(), timeout)

    try:
        answer = asyncio.run(bounded())
    except (asyncio.TimeoutError, TimeoutError):
        raise OSError(f"{address}: no answer from a Dask scheduler within {timeout:g} s (is it a Dask scheduler's "
                      "port?)") from None
    except OSError as exc:
        raise OSError(f"{address}: {exc}") from None
    except Exception as exc:  # a server speaking another protocol: garbage frames, huge lengths...
        raise OSError(f"{address}: answered, but not as a Dask scheduler ({type(exc).__name__})") from None
    if not isinstance(answer, dict) or answer.get("type") != "Scheduler":
        kind = answer.get("type") if isinstance(answer, dict) else type(answer).__name__
        raise OSError(f"{address}: answered as {kind!r}, not as a Dask scheduler")


@contextlib.contextmanager
def local_client(address: str | None = None, *, n_workers: int = 2, threads_per_worker: int = 1,
                 memory_limit: Any = "auto", processes: bool = False, **kwargs: Any) -> Iterator[Any]:
    """A :class:`distributed.Client`: on a new ``LocalCluster`` (shut down on exit), or on ``address``.

    Parameters
    ----------
    address : str, optional
        A running scheduler, e.g. ``"tcp://10.0.0.5:8786"``; then nothing is started or shut down. It is
        probed first (:func:`probe_scheduler`, bounded by ``timeout``, default 10 s): an address that does not
        answer as a Dask scheduler raises ``OSError`` instead of hanging.
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
        probe_scheduler(address, kwargs.get("timeout", 10))
        with Client(address, **kwargs) as client:
            yield client
        return
    with LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, memory_limit=memory_limit,
                      processes=processes, dashboard_address=":0", **kwargs) as cluster, Client(cluster) as client:
        yield client
