"""Beyond one machine: Adam's state on Dask arrays, held by a ``dask.distributed`` cluster.

:func:`adam_np.update` and :class:`adam_np.Adam` accept Dask arrays directly (through array-api-compat's
Dask namespace); this package adds what only a cluster needs: checkpoints of Dask-held state written
chunk-parallel to a Zarr store (:func:`save_zarr`, :func:`load_zarr`) and a local cluster for examples,
tests and benchmarks (:func:`local_client`). Only this package imports ``zarr``; ``dask.distributed`` is also
imported by :mod:`adam_np.core._xp` (a persist waits for its tasks) and :mod:`adam_np._dask` (the optimizer's
history cuts).
"""

from __future__ import annotations

from ..checkpoint import CheckpointError
from .local import local_client
from .zarr_checkpoint import FORMAT, VERSION, ZarrCheckpoint, load_zarr, read_manifest, save_zarr

__all__ = ["CheckpointError", "FORMAT", "VERSION", "ZarrCheckpoint", "load_zarr", "local_client",
           "read_manifest", "save_zarr"]
