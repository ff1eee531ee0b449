"""Linear-regression data larger than memory: a synthetic problem written chunk-parallel to Zarr, and existing
``.zarr`` or ``.npy`` feature/label arrays opened lazily as Dask arrays (rows in chunks).

A data store is a Zarr group with a 2-D array ``X`` (rows × features) and a 1-D array ``y`` (rows), chunked
along the rows. :func:`make_data` writes one (``adam-np make-data``) with the true weights in its attributes;
:func:`open_data` opens one, or a pair of ``.npy`` files memory-mapped, and checks what it can without reading.

Examples
--------
>>> import os, tempfile
>>> from adam_np.cluster.data import make_data, open_data
>>> path = os.path.join(tempfile.mkdtemp(), "toy.zarr")
>>> info = make_data(path, rows=1000, features=3, chunk_rows=256, seed=0)
>>> X, y, meta = open_data(path)
>>> X.shape, X.chunks[0], len(meta["w_true"])
((1000, 3), (256, 256, 256, 232), 3)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr

__all__ = ["FORMAT", "DataError", "content_fingerprint", "make_data", "open_data"]

FORMAT = "adam_np.linreg-data"
"""The ``format`` attribute of a store written by :func:`make_data`."""

CHUNK_BYTES = 64 * 2**20
"""Default rows per chunk: as many as fit in this many bytes of features."""


class DataError(ValueError):
    """A data set that cannot be trained on: missing, unreadable, mismatched or malformed (the message names it)."""


def _chunk_rows(features: int, itemsize: int, chunk_rows: int | None) -> int:
    return chunk_rows if chunk_rows is not None else max(1, CHUNK_BYTES // (features * itemsize))


def make_data(path: Any, rows: int, features: int, *, noise: float = 0.01, seed: int = 0,
              chunk_rows: int | None = None, dtype: Any = np.float64) -> dict:
    r"""Write a synthetic linear problem :math:`y = Xw + b + \sigma\varepsilon` to a new Zarr store.

    :math:`X` and :math:`\varepsilon` are standard normal, drawn per chunk from ``seed`` (the same data
    whatever the cluster), :math:`w, b` standard normal from ``seed`` and stored as attributes
    (``w_true``, ``b_true``). The chunks are generated and written by the workers of the active Dask
    scheduler (the distributed client, if any): nothing of the size of the data passes through this process.
    The store is written under a temporary name and renamed into place when complete.

    Parameters
    ----------
    path : str or os.PathLike
        The new store, a directory ending in ``.zarr``; it must not exist.
    rows, features : int
        Shape of :math:`X` (both >= 1).
    noise : float, default 0.01
        :math:`\sigma >= 0`.
    seed : int, default 0
    chunk_rows : int, optional
        Rows per chunk (default: 64 MiB of features per chunk).
    dtype : {float64, float32}

    Returns
    -------
    dict
        The store's attributes: format, rows, features, chunk_rows, noise, seed, w_true, b_true, fingerprint.

    Raises
    ------
    ValueError
        On a bad argument (naming it) or an existing ``path``; nothing is written.
    """
    for name, value, low in (("rows", rows, 1), ("features", features, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if chunk_rows is not None and (isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer))
                                   or chunk_rows < 1):
        raise ValueError(f"chunk_rows must be an integer >= 1, got {chunk_rows!r}")
    if not (isinstance(noise, (int, float)) and np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    path = os.fspath(path)
    if os.path.exists(path):
        raise ValueError(f"path {path!r} exists; make-data writes a new store")
    rows, features = int(rows), int(features)
    chunk = min(_chunk_rows(features, dtype.itemsize, chunk_rows), rows)
    rng = np.random.default_rng(seed)
    w_true, b_true = rng.standard_normal(features), float(rng.standard_normal())
    rs = da.random.RandomState(seed)
    X = rs.standard_normal((rows, features), chunks=(chunk, features))
    y = X @ w_true + b_true + noise * rs.standard_normal(rows, chunks=chunk)
    attrs = {"format": FORMAT, "rows": rows, "features": features, "chunk_rows": chunk, "noise": float(noise),
             "seed": int(seed), "dtype": dtype.name, "w_true": w_true.tolist(), "b_true": b_true}
    attrs["fingerprint"] = hashlib.sha256(json.dumps(attrs, sort_keys=True).encode()).hexdigest()
    parent = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(parent, f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        group = zarr.open_group(tmp, mode="w")
        group.attrs.update(attrs)
        dask.compute(da.to_zarr(X.astype(dtype), tmp, component="X", compute=False),
                     da.to_zarr(y.astype(dtype), tmp, component="y", compute=False))
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return attrs


def open_data(path: Any, labels: Any = None, *, chunk_rows: int | None = None) -> tuple[da.Array, da.Array, dict]:
    """Features ``X`` (rows × features) and labels ``y`` (rows) as Dask arrays chunked along the rows.

    Parameters
    ----------
    path : str or os.PathLike
        A Zarr store (a directory ending in ``.zarr`` with arrays ``X`` and ``y``), or a ``.npy`` file of
        features (memory-mapped), then with ``labels``.
    labels : str or os.PathLike, optional
        The ``.npy`` file of labels, for ``.npy`` features only.
    chunk_rows : int, optional
        Rows per chunk for ``.npy`` data (default: 64 MiB of features); a store keeps its own chunks.

    Returns
    -------
    X, y : dask.array.Array
    meta : dict
        ``path``, ``kind`` ("zarr" or "npy"), ``fingerprint`` (the data's layout: the store's own for
        :func:`make_data` stores, else shapes, dtypes, chunks and file sizes) and the store's attributes.
        The values are identified by :func:`content_fingerprint`, which reads them.

    Raises
    ------
    DataError
        If the files are missing or unreadable, ``X``/``y`` are absent or not 2-D/1-D real floating
        arrays of one dtype, or their row counts differ. Nothing is read but metadata.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"data {path!r} does not exist")
    if path.rstrip("/").endswith(".npy"):
        X, y, meta = _open_npy(path, labels, chunk_rows)
    else:
        if labels is not None:
            raise DataError("labels are given separately only for .npy features; a Zarr store holds 'y'")
        X, y, meta = _open_zarr(path)
    if X.ndim != 2 or y.ndim != 1:
        raise DataError(f"data {path!r}: features must be 2-D and labels 1-D, got {X.shape} and {y.shape}")
    if X.shape[0] != y.shape[0]:
        raise DataError(f"data {path!r}: features have {X.shape[0]} rows, labels {y.shape[0]}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"data {path!r} is empty: features of shape {X.shape}")
    if X.dtype != y.dtype or X.dtype not in (np.float32, np.float64):
        raise DataError(f"data {path!r}: features and labels must share float32 or float64, got {X.dtype} "
                        f"and {y.dtype}")
    if X.chunks[1] != (X.shape[1],):
        X = X.rechunk({1: -1})
    if y.chunks[0] != X.chunks[0]:
        y = y.rechunk((X.chunks[0],))
    meta.setdefault("fingerprint", hashlib.sha256(json.dumps(
        [meta["kind"], X.shape, X.dtype.str, X.chunks[0], meta.get("sizes")], default=str).encode()).hexdigest())
    meta["path"] = path
    return X, y, meta


def content_fingerprint(X: da.Array, y: da.Array) -> dict:
    """What identifies the data's values: one sha256 per row chunk of ``X`` and ``y``, computed by the workers.

    Each chunk is hashed where it is read (its dtype, shape and bytes, as the Zarr checkpoints hash theirs): one
    read of the data, nothing but the digests gathered here. Stored in a cluster run's checkpoint, it lets a
    resumed run refuse data whose values changed although shapes, attributes and file sizes did not.

    Parameters
    ----------
    X, y : dask.array.Array
        Features and labels, as :func:`open_data` returns them.

    Returns
    -------
    dict
        ``sha256``: one digest over the shapes, the row chunks and every chunk's digest; ``X``, ``y``: each
        chunk's digest shortened to 16 hex digits, in row order (to name the chunks that differ).

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> X, y = da.zeros((6, 2), chunks=(3, 2)), da.zeros(6, chunks=3)
    >>> a = content_fingerprint(X, y)
    >>> b = content_fingerprint(X, da.from_array(np.array([0, 0, 0, 0, 1, 0.]), chunks=3))
    >>> a["sha256"] == b["sha256"], [s == t for s, t in zip(a["y"], b["y"])]
    (False, [True, False])
    """
    from .zarr_checkpoint import _block_digests

    (digests,) = dask.compute({"X": _block_digests(X), "y": _block_digests(y)})
    h = hashlib.sha256(json.dumps([list(X.shape), list(y.shape), list(X.chunks[0]), digests]).encode())
    return {"sha256": h.hexdigest(), "X": [d[:16] for d in digests["X"]], "y": [d[:16] for d in digests["y"]]}


def _open_zarr(path: str) -> tuple[da.Array, da.Array, dict]:
    try:
        group = zarr.open_group(path, mode="r")
        attrs = dict(group.attrs)
        arrays = {name: group[name] for name in ("X", "y") if name in group}
    except Exception as exc:  # zarr raises several types for missing or broken metadata
        raise DataError(f"data {path!r} is not a readable Zarr store: {type(exc).__name__}: {exc}") from None
    for name in ("X", "y"):
        if name not in arrays or not isinstance(arrays[name], zarr.Array):
            raise DataError(f"data {path!r} has no array {name!r} (a data store holds X: rows x features, y: rows)")
    return da.from_zarr(arrays["X"]), da.from_zarr(arrays["y"]), {"kind": "zarr", **attrs}


def _open_npy(path: str, labels: Any, chunk_rows: int | None) -> tuple[da.Array, da.Array, dict]:
    if labels is None:
        raise DataError(f"data {path!r} is a .npy file of features: give the labels' .npy file too (--labels)")
    labels = os.fspath(labels)
    arrays = []
    for what, file in (("features", path), ("labels", labels)):
        try:
            arrays.append(np.load(file, mmap_mode="r"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{what} {file!r} cannot be read as .npy: {exc}") from None
    X, y = arrays
    if X.ndim != 2:
        raise DataError(f"data {path!r}: features must be 2-D, got shape {X.shape}")
    chunk = _chunk_rows(X.shape[1], X.dtype.itemsize, chunk_rows)
    sizes = [os.path.getsize(path), os.path.getsize(labels)]
    return (da.from_array(X, chunks=(chunk, X.shape[1])), da.from_array(y, chunks=chunk),
            {"kind": "npy", "labels": labels, "sizes": sizes})
