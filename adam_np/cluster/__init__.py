"""Beyond one machine: Adam's state on Dask arrays, held by a ``dask.distributed`` cluster.

:func:`adam_np.update` and :class:`adam_np.Adam` accept Dask arrays directly (through array-api-compat's
Dask namespace); this package adds what only a cluster needs: checkpoints of Dask-held state written
chunk-parallel to a Zarr store (:func:`save_zarr`, :func:`load_zarr`) and a local cluster for examples,
tests and benchmarks (:func:`local_client`). Only this package imports ``dask.distributed`` and ``zarr``.
"""

from __future__ import annotations

from .._npz import CheckpointError
from .local import local_client
from .zarr_checkpoint import FORMAT, VERSION, ZarrCheckpoint, load_zarr, read_manifest, save_zarr

__all__ = ["CheckpointError", "FORMAT", "VERSION", "ZarrCheckpoint", "load_zarr", "local_client",
           "read_manifest", "save_zarr"]
