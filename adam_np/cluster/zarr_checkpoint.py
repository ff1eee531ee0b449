r"""Checkpoints of Dask-held optimizer state: one Zarr store, written chunk-parallel by the workers.

A checkpoint is a directory::

    PATH/manifest.json                 what is current: format, version, step, config, and per array its
                                       shape, dtype, chunking and one sha256 per chunk; its own sha256
    PATH/step-000000000012-1a2b3c4d/   the Zarr store it names: params/0, v/0, s/0, ... one array each, and
                                       .adam_np-store, the marker that says this module wrote it
    PATH/.adam_np.lock                 the lock every save holds (never removed)

:func:`save_zarr` writes a *new* store next to the current one (each worker writes and hashes the chunks it
holds: nothing is gathered on the client but the digests), then replaces ``manifest.json`` atomically
(``os.replace``) and only then removes older stores. A crash at any point before that rename leaves the
previous manifest and the store it names untouched, so the previous checkpoint stays loadable.

Concurrent saves to one ``PATH`` (threads, or processes of one host) are serialized by an exclusive lock on
``PATH/.adam_np.lock`` (``flock``, released by the kernel when a saver dies), so the last save to complete
wins and no save removes a store another one is writing or has just committed. Holding the lock, a save
removes only what this module provably wrote and nobody uses any more: stores of its own naming that carry its
marker or that the previous manifest named, and manifest temp files of its own naming; a user's ``step-...``
entry stays. On file systems without ``flock`` (or Windows), saves of one process are still serialized.

:func:`load_zarr` checks the manifest (its digest, format and version) and the optimizer's parameter count,
shapes and dtypes before it reads a chunk, then reads every chunk once, hashing it as it goes, and compares
all digests before anything is assigned: a corrupt or mismatched store raises
:class:`~adam_np.checkpoint.CheckpointError` naming the array and loads nothing.

Examples
--------
>>> import os, tempfile, dask.array as da, numpy as np, adam_np
>>> from adam_np.cluster import save_zarr, load_zarr
>>> opt = adam_np.Adam([da.from_array(np.arange(6.0), chunks=4)], lr=0.1)
>>> opt.step([da.ones(6, chunks=4)])
>>> path = os.path.join(tempfile.mkdtemp(), "ckpt.zarr")
>>> save_zarr(path, opt)
>>> other = adam_np.Adam([da.zeros(6, chunks=4)])
>>> load_zarr(path, other).step, other.params[0].compute()
(1, array([-0.1,  0.9,  1.9,  2.9,  3.9,  4.9]))
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

import dask
import dask.array as da
import numpy as np
import zarr

from ..checkpoint import CheckpointError, fsync_dir

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: saves of one process are still serialized
    fcntl = None
from ..core import adam as _adam
from ..core._xp import is_lazy

__all__ = ["FORMAT", "VERSION", "ZarrCheckpoint", "load_zarr", "read_manifest", "save_zarr"]

FORMAT = "adam_np.zarr-checkpoint"
"""The ``format`` field of ``manifest.json``."""

VERSION = 1
"""The ``version`` field of ``manifest.json`` that this module writes and reads."""

MANIFEST = "manifest.json"

MARKER = ".adam_np-store"
"""The file inside each store :func:`save_zarr` writes (before any chunk): proof that the store is this module's."""

LOCK = ".adam_np.lock"

_STORE_NAME = re.compile(r"step-[0-9]{12}-[0-9a-f]{8}")
_MANIFEST_TMP = re.compile(rf"\.{re.escape(MANIFEST)}\.[0-9a-f]{{8}}\.tmp")
_thread_locks: dict = {}
_thread_locks_guard = threading.Lock()


class ZarrCheckpoint(NamedTuple):
    """What :func:`load_zarr` restored: the step, the store it read and the caller's ``extra`` metadata."""

    step: int
    store: str
    extra: dict


def _digest(block: np.ndarray) -> str:
    """sha256 over one chunk's dtype, shape and C-order bytes."""
    block = np.ascontiguousarray(block)
    h = hashlib.sha256(f"{block.dtype.str}{block.shape}".encode())
    h.update(block.tobytes())
    return h.hexdigest()


def _block_digests(x: da.Array) -> list:
    """One delayed digest per chunk, in C order of the chunk grid (computed where the chunk is)."""
    return [dask.delayed(_digest, pure=True)(b) for b in x.to_delayed().ravel()]


def _regular(x: da.Array) -> da.Array:
    """``x`` with chunks Zarr can store (all equal along an axis but the last): rechunked only where needed."""
    if all(len(set(c[:-1])) <= 1 and c[-1] <= c[0] for c in x.chunks if c):
        return x
    return x.rechunk(tuple(max(c) if c else 0 for c in x.chunks))


def _arrays(optimizer: Any) -> dict:
    """The optimizer's Dask arrays by store name: params/i, v/i, s/i, master/i, s_max/i."""
    state = optimizer.state
    groups = (("params", optimizer.params), ("v", state.v), ("s", state.s), ("master", state.master or []),
              ("s_max", state.s_max or []))
    return {f"{key}/{i}": x for key, xs in groups for i, x in enumerate(xs)}


def _check_dask_optimizer(optimizer: Any) -> None:
    from ..optimizer import Adam

    if not isinstance(optimizer, Adam):
        raise TypeError(f"optimizer must be an adam_np.Adam, got {type(optimizer).__name__}")
    if not optimizer.params or not all(is_lazy(x) for x in optimizer.params):
        raise TypeError("optimizer must hold Dask arrays (adam_np.Adam over dask.array params); "
                        "for NumPy/CuPy/torch arrays use optimizer.save (an .npz checkpoint)")


def _manifest_digest(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@contextlib.contextmanager
def _save_lock(path: str) -> Iterator[None]:
    """Hold the save lock of checkpoint ``path``: a per-path thread lock, then ``flock`` on ``PATH/.adam_np.lock``
    (flock, not lockf: it excludes other open files of this process too, and dies with its process)."""
    key = os.path.realpath(path)
    with _thread_locks_guard:
        thread_lock = _thread_locks.setdefault(key, threading.Lock())
    with thread_lock:
        fd = os.open(os.path.join(path, LOCK), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except OSError:  # pragma: no cover - a file system without flock: the thread lock only
                    pass
            yield
        finally:
            os.close(fd)  # releases the flock


def _is_ours(store: str) -> bool:
    """Whether the directory ``store`` carries this module's marker."""
    try:
        with open(os.path.join(store, MARKER)) as f:
            return json.load(f).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _sweep(path: str, keep: str | None, previous: str | None) -> None:
    """Holding the save lock: remove what earlier saves left in ``path`` except the store ``keep``.

    That is stores of this module's naming that carry its marker (superseded, or from a killed save: no save
    runs but the caller's) or that the previous manifest named (``previous``: stores written before markers),
    and manifest temp files of this module's naming. Nothing else is touched.
    """
    for entry in os.listdir(path):
        target = os.path.join(path, entry)
        if _STORE_NAME.fullmatch(entry) and entry != keep and os.path.isdir(target) and not os.path.islink(target):
            if entry == previous or _is_ours(target):
                shutil.rmtree(target, ignore_errors=True)
        elif _MANIFEST_TMP.fullmatch(entry) and os.path.isfile(target):
            with contextlib.suppress(OSError):
                os.remove(target)


def _current_store(path: str) -> str | None:
    """The store the manifest of ``path`` names, if it is a valid manifest of this module (else None)."""
    try:
        return read_manifest(path)["store"]
    except CheckpointError:
        return None


def save_zarr(path: Any, optimizer: Any, *, extra: dict | None = None) -> None:
    """Write ``optimizer``'s parameters and state to the Zarr checkpoint directory ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint directory (created if missing; on a cluster, a path every worker can write).
    optimizer : adam_np.Adam
        An optimizer over Dask arrays.
    extra : dict, optional
        Small JSON-serializable metadata (epoch, batch index, ...), returned by :func:`load_zarr`.

    Raises
    ------
    TypeError
        On an optimizer without Dask arrays, or ``extra`` that JSON cannot hold; nothing is written.
    ValueError
        If ``path`` exists and is not a directory, or the optimizer's lr is a schedule (a callable).

    Notes
    -----
    One ``dask.compute`` writes and hashes every chunk where it is held; chunkings Zarr cannot store
    (unequal inner chunks) are rechunked to their largest chunk for the store and restored on load.

    Concurrent saves to one ``path`` are serialized by a lock (see the module's notes): the last to complete
    wins. Each save removes the stores and temp files of its own naming that earlier saves left, and nothing
    else: the previous store (after the new manifest is in place), what killed saves left (before writing,
    so that a full disk gets that space back); a user's ``step-...`` entry without this module's marker stays.
    """
    _check_dask_optimizer(optimizer)
    extra = {} if extra is None else extra
    try:
        extra = json.loads(json.dumps(extra))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"extra must be JSON-serializable: {exc}") from None
    if not isinstance(extra, dict):
        raise TypeError(f"extra must be a dict, got {type(extra).__name__}")
    config = optimizer.config.to_dict()
    if callable(config["lr"]):
        raise ValueError("an lr schedule (a callable) cannot be stored in a Zarr checkpoint; pass a float lr")
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"path {path!r} exists and is not a directory")
    os.makedirs(path, exist_ok=True)
    with _save_lock(path):
        _save_locked(path, optimizer, extra, config)


def _save_locked(path: str, optimizer: Any, extra: dict, config: dict) -> None:
    """:func:`save_zarr` after validation, holding the save lock of ``path``."""
    previous = _current_store(path)
    _sweep(path, keep=previous, previous=None)  # what killed saves left: no other save runs
    state = optimizer.state
    store_name = f"step-{int(state.step):012d}-{uuid.uuid4().hex[:8]}"
    while os.path.exists(os.path.join(path, store_name)):  # pragma: no cover - 32 random bits collide
        store_name = f"step-{int(state.step):012d}-{uuid.uuid4().hex[:8]}"
    store = os.path.join(path, store_name)
    os.mkdir(store)
    with open(os.path.join(store, MARKER), "w") as f:  # before any chunk: the store is provably ours
        json.dump({"format": FORMAT, "store": store_name}, f)
    arrays = _arrays(optimizer)
    writes, digests, entries = [], {}, {}
    for name, x in arrays.items():
        stored = _regular(x)
        writes.append(da.to_zarr(stored, store, component=name, compute=False))
        digests[name] = _block_digests(stored)
        entries[name] = {"shape": list(x.shape), "dtype": np.dtype(x.dtype).str,
                         "chunks": [list(c) for c in x.chunks], "store_chunks": [list(c) for c in stored.chunks]}
    _, computed = dask.compute(writes, digests)
    for name, hexes in computed.items():
        entries[name]["sha256"] = list(hexes)
    manifest = {
        "format": FORMAT, "version": VERSION, "store": store_name, "step": int(state.step),
        "skipped": int(state.skipped), "mu_product": float(state.mu_product), "n_params": len(optimizer.params),
        "master": state.master is not None, "s_max": state.s_max is not None, "config": config,
        "arrays": entries, "extra": extra,
    }
    manifest["sha256"] = _manifest_digest(manifest)
    tmp = os.path.join(path, f".{MANIFEST}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(path, MANIFEST))  # the commit point
    fsync_dir(path)
    _sweep(path, keep=store_name, previous=previous)


def read_manifest(path: Any) -> dict:
    """The checked manifest of the Zarr checkpoint ``path`` (its digest, format and version).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict

    Raises
    ------
    CheckpointError
        If the manifest is missing, unreadable, altered, of another format or version, or if a field does not
        have the form :func:`save_zarr` writes (even with a recomputed sha256: a ``store`` outside ``path``,
        a wrong type, chunks that do not tile the shape...), naming the field.
    """
    path = os.fspath(path)
    file = os.path.join(path, MANIFEST)
    try:
        with open(file) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path!r} holds no {MANIFEST}: not an adam_np Zarr checkpoint, "
                              "or its first save did not finish") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{file!r} cannot be read: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("sha256") != _manifest_digest(manifest):
        raise CheckpointError(f"{file!r} does not match its own sha256: altered or truncated")
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise CheckpointError(f"{file!r} is format {manifest.get('format')!r} version {manifest.get('version')!r}, "
                              f"expected {FORMAT!r} version {VERSION}")
    _check_manifest(file, manifest)
    return manifest


def _is_int(value: Any, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _check_manifest(file: str, manifest: dict) -> None:
    """Every field of ``manifest`` has the type and form :func:`save_zarr` writes, else a CheckpointError naming it."""
    def bad(field: str, expected: str) -> CheckpointError:
        return CheckpointError(f"{file!r}: {field} is {_short(manifest, field)}, expected {expected}")

    store = manifest.get("store")
    if not isinstance(store, str) or not _STORE_NAME.fullmatch(store):
        raise CheckpointError(f"{file!r}: store is {store!r}, expected the name of a store inside the checkpoint "
                              "(step-<12 digits>-<8 hex digits>)")
    for field, low in (("step", 0), ("skipped", 0), ("n_params", 1)):
        if not _is_int(manifest.get(field), low):
            raise bad(field, f"an integer >= {low}")
    mu = manifest.get("mu_product")
    if isinstance(mu, bool) or not isinstance(mu, (int, float)):
        raise bad("mu_product", "a number")
    for field, kind in (("master", bool), ("s_max", bool), ("config", dict), ("extra", dict), ("arrays", dict)):
        if not isinstance(manifest.get(field), kind):
            raise bad(field, f"a {kind.__name__}")
    n, entries = manifest["n_params"], manifest["arrays"]
    keys = ["params", "v", "s"] + ["master"] * manifest["master"] + ["s_max"] * manifest["s_max"]
    expected = {f"{key}/{i}" for key in keys for i in range(n)}
    if set(entries) != expected:
        raise CheckpointError(f"{file!r}: arrays are {sorted(entries)[:8]}, expected {sorted(expected)[:8]} "
                              f"(n_params {n}, master {manifest['master']}, s_max {manifest['s_max']})")
    for name, entry in entries.items():
        where = f"arrays[{name!r}]"
        if not isinstance(entry, dict):
            raise CheckpointError(f"{file!r}: {where} is not a dict")
        shape = entry.get("shape")
        if not isinstance(shape, list) or not all(_is_int(d) for d in shape):
            raise CheckpointError(f"{file!r}: {where}.shape is {shape!r:.80}, expected a list of integers >= 0")
        try:
            dtype = np.dtype(entry.get("dtype"))
        except (TypeError, ValueError):
            dtype = None
        if not isinstance(entry.get("dtype"), str) or dtype is None or dtype.kind not in "fc":
            raise CheckpointError(f"{file!r}: {where}.dtype is {entry.get('dtype')!r:.80}, expected a float dtype")
        for key in ("chunks", "store_chunks"):
            chunks = entry.get(key)
            if (not isinstance(chunks, list) or len(chunks) != len(shape) or not all(
                    isinstance(c, list) and all(_is_int(k) for k in c) and sum(c) == d
                    for c, d in zip(chunks, shape))):
                raise CheckpointError(f"{file!r}: {where}.{key} is {chunks!r:.80}, expected one list of chunk "
                                      f"sizes per axis that add up to the shape {shape}")
        digests, count = entry.get("sha256"), int(np.prod([len(c) for c in entry["store_chunks"]]))
        if not isinstance(digests, list) or len(digests) != count or not all(isinstance(d, str) for d in digests):
            raise CheckpointError(f"{file!r}: {where}.sha256 is not a list of {count} digests (one per stored chunk)")


def _short(manifest: dict, field: str) -> str:
    return f"{manifest.get(field)!r:.80}"


def _open(store: str, name: str, entry: dict) -> da.Array:
    """The stored array ``name`` as a Dask array chunked as saved, after checking its Zarr metadata."""
    try:
        z = zarr.open_array(store, path=name, mode="r")
    except Exception as exc:  # zarr raises several types for missing or broken metadata
        raise CheckpointError(f"array {name!r} cannot be opened in {store!r}: {exc}") from None
    store_chunks = tuple(tuple(c) for c in entry["store_chunks"])
    if (list(z.shape) != entry["shape"] or np.dtype(z.dtype).str != entry["dtype"]
            or tuple(z.chunks) != tuple(c[0] if c else 0 for c in store_chunks)):
        raise CheckpointError(f"array {name!r} in {store!r} is {z.shape} {z.dtype} in chunks {z.chunks}, "
                              f"the manifest says {tuple(entry['shape'])} {np.dtype(entry['dtype'])}")
    return da.from_zarr(z, chunks=store_chunks)


_READ_ERRORS = (RuntimeError, ValueError, TypeError, KeyError, IndexError, OSError, EOFError)
"""What reading a damaged chunk raises (numcodecs: RuntimeError for a bad Zstd/Blosc frame; zarr: ValueError
for a chunk of the wrong size...); a lost worker or scheduler is not among them and propagates as it is."""


def _unreadable(path: str, stored: dict, exc: BaseException) -> CheckpointError:
    """The CheckpointError for a failed read: the array and chunk that fail when read alone, else ``exc``."""
    for name, x in stored.items():
        for i, block in enumerate(x.to_delayed().ravel()):
            try:
                dask.compute(block)
            except _READ_ERRORS as err:
                return CheckpointError(f"checkpoint {path!r}: array {name!r} chunk {i} of {x.npartitions} cannot be "
                                       f"read ({type(err).__name__}: {err}); truncated or corrupt, nothing was loaded")
    return CheckpointError(f"checkpoint {path!r} cannot be read ({type(exc).__name__}: {exc}); nothing was loaded")


def load_zarr(path: Any, optimizer: Any) -> ZarrCheckpoint:
    """Restore ``optimizer`` (parameters, state and config) from the Zarr checkpoint ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        A directory written by :func:`save_zarr`.
    optimizer : adam_np.Adam
        An optimizer over Dask arrays of the same count, shapes and dtypes as the saved parameters; its
        ``params`` and ``state`` become the loaded arrays, persisted (on the workers with a client).

    Returns
    -------
    ZarrCheckpoint

    Raises
    ------
    CheckpointError
        (a ValueError) on a missing, altered or wrong-version manifest, a missing or corrupt array (named),
        or arrays that do not match the optimizer; nothing is loaded.
    TypeError
        On an optimizer without Dask arrays.
    """
    _check_dask_optimizer(optimizer)
    path = os.fspath(path)
    manifest = read_manifest(path)
    entries, store = manifest["arrays"], os.path.join(path, manifest["store"])
    n = len(optimizer.params)
    if manifest["n_params"] != n:
        raise CheckpointError(f"checkpoint {path!r} holds {manifest['n_params']} parameters, the optimizer has {n}")
    for i, x in enumerate(optimizer.params):
        entry = entries.get(f"params/{i}")
        if entry is None:
            raise CheckpointError(f"checkpoint {path!r} lacks array 'params/{i}'")
        if tuple(entry["shape"]) != tuple(x.shape) or np.dtype(entry["dtype"]) != np.dtype(x.dtype):
            raise CheckpointError(f"checkpoint {path!r}: array 'params/{i}' is {tuple(entry['shape'])} "
                                  f"{np.dtype(entry['dtype'])}, params[{i}] is {tuple(x.shape)} {x.dtype}")
    stored = {name: _open(store, name, entry) for name, entry in entries.items()}
    digests = {name: _block_digests(x) for name, x in stored.items()}
    try:
        arrays, digests = dask.persist(stored, digests)  # one read of each chunk: kept and hashed
        (digests,) = dask.compute(digests)
    except _READ_ERRORS as exc:  # a chunk the codec cannot decode (truncated, garbled), an unreadable file
        raise _unreadable(path, stored, exc) from None
    for name, got in digests.items():
        bad = [i for i, (a, b) in enumerate(zip(got, entries[name]["sha256"])) if a != b]
        if bad or len(got) != len(entries[name]["sha256"]):
            raise CheckpointError(f"checkpoint {path!r}: array {name!r} does not match its checksum "
                                  f"(chunks {bad[:5]} of {len(got)}); nothing was loaded")
    arrays = {name: x.rechunk(tuple(tuple(c) for c in entries[name]["chunks"])) for name, x in arrays.items()}

    def group(key: str, present: bool = True) -> list | None:
        return [arrays[f"{key}/{i}"] for i in range(n)] if present else None

    params = group("params")
    try:
        config = _adam.AdamConfig.from_dict(manifest["config"])
        state = _adam.AdamState(manifest["step"], group("v"), group("s"), manifest["skipped"],
                                master=group("master", manifest["master"]), s_max=group("s_max", manifest["s_max"]),
                                mu_product=manifest["mu_product"])
        _adam._validate(params, state, params, config)
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path!r} does not hold a valid state: {exc}") from None
    optimizer.params, optimizer.state, optimizer.config = params, state, config
    return ZarrCheckpoint(manifest["step"], store, manifest["extra"])
