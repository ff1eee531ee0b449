r"""Atomic, checksummed checkpoints of an :class:`adam_np.Adam` run as one ``.npz`` file.

A checkpoint holds everything needed to continue a training run bit for bit:

- the parameters (the optimizer's own arrays, restored in place on load),
- the optimizer state: step :math:`t`, skipped steps, moments :math:`v, s`, the mixed-precision
  master copy if any, AMSGrad's ``s_max`` and NAdam's ``mu_product``, and the hyper-parameters,
- the state of the data-order random generator (``numpy.random.Generator.bit_generator.state``),
- ``extra``: the caller's run state, a dict of JSON values (loop position, settings...) and NumPy arrays
  (loss history, an epoch's order...). Training loops store theirs here: :mod:`adam_np.book.resume` and
  :mod:`adam_np.cluster.train` write this one format, a run without an :class:`adam_np.Adam` (a chapter-7
  rule's slots) with ``optimizer=None``.

File format (``FORMAT_VERSION`` 1): an uncompressed ``.npz`` read with ``allow_pickle=False``
whose members are ``param/<i>``, ``v/<i>``, ``s/<i>``, ``master/<i>``, ``s_max/<i>``, ``extra/<key>`` (NumPy
arrays), ``meta`` (UTF-8 JSON as ``uint8``, with ``extra``'s JSON values) and ``sha256`` (hex digest as ``uint8``).
The digest covers every array's name, dtype, shape and bytes (in name order) and the ``meta`` bytes, so a
corrupt, truncated or hand-edited file is detected, not loaded.

Writing is atomic: the file is written to a temporary file in the same directory, flushed,
fsynced, renamed over ``path`` with :func:`os.replace`, and the directory is fsynced. A process
killed at any moment leaves ``path`` holding either the previous or the new checkpoint
(plus, at worst, a stale ``.<name>.*.tmp`` file next to it, which the next save to ``path`` removes).
Below :func:`save`/:func:`load` (the optimizer) and :func:`write`/:func:`read` (a :class:`Checkpoint`) lie
:func:`write_atomic`/:func:`read_verified` (arrays and a JSON dict, checksummed), which test code uses to craft files.

Examples
--------
>>> import numpy as np, os, tempfile
>>> from adam_np import Adam
>>> from adam_np import checkpoint
>>> w = np.array([1.0, 2.0]); opt = Adam([w], lr=0.1)
>>> rng = np.random.default_rng(0)
>>> opt.step([w.copy()]); order = rng.permutation(4)
>>> path = os.path.join(tempfile.mkdtemp(), "run.npz")
>>> checkpoint.save(path, opt, rng=rng, extra={"epoch": 0, "batch": 1, "loss": [0.5]})
>>> w2 = np.zeros(2); opt2 = Adam([w2], lr=0.1); rng2 = np.random.default_rng(123)
>>> ck = checkpoint.load(path, opt2, rng=rng2)
>>> ck.step, ck.extra, bool((w2 == w).all()), bool((rng2.permutation(4) == rng.permutation(4)).all())
(1, {'epoch': 0, 'batch': 1, 'loss': [0.5]}, True, True)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import stat
import tempfile
import time
import zipfile
from typing import Any, NamedTuple

import numpy as np

from .core._xp import is_lazy, to_numpy

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "Checkpoint", "CheckpointError", "fsync_dir", "load", "read",
           "read_verified", "remove_stale_temps", "save", "write", "write_atomic"]

FORMAT_VERSION = 1
FORMAT_NAME = "adam_np.checkpoint"
_GROUPS = (("param", "params"), ("v", "v"), ("s", "s"), ("master", "master"), ("s_max", "s_max"))
"""Member prefix and :class:`Checkpoint` field of each group of arrays."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, corrupt, truncated, wrong version or mismatched."""


class Checkpoint(NamedTuple):
    """What a checkpoint file holds, as read by :func:`read` / returned by :func:`load`.

    Attributes
    ----------
    step : int
        The optimizer's step counter :math:`t`.
    skipped : int
        Steps skipped on non-finite gradients.
    config : dict or None
        The :class:`adam_np.AdamConfig` fields (``lr`` is None when it was a schedule); None when the
        checkpoint holds no optimizer (``save(path, None, ...)``).
    params, v, s : list of numpy.ndarray
        Parameters and moments.
    master : list of numpy.ndarray or None
        Mixed-precision master copy.
    rng_state : dict or None
        ``bit_generator.state`` of the data-order generator.
    extra : dict
        The caller's run state: JSON values and NumPy arrays.
    s_max : list of numpy.ndarray or None
        AMSGrad's running maximum of the second moment.
    mu_product : float
        NAdam's running product of momentum coefficients.
    path : str
        The file it was read from (for messages).
    """

    step: int
    skipped: int
    config: dict | None
    params: list
    v: list
    s: list
    master: list | None
    rng_state: dict | None
    extra: dict
    s_max: list | None = None
    mu_product: float = 1.0
    path: str = ""


def save(path: Any, optimizer: Any = None, *, rng: np.random.Generator | None = None,
         extra: dict | None = None) -> None:
    """Write a checkpoint of ``optimizer`` (its parameters and state), ``rng`` and ``extra`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.npz`` file; replaced atomically, its directory must exist.
    optimizer : adam_np.Adam, optional
        The optimizer; its ``params`` (the caller's arrays) are saved with its state. None: a checkpoint of
        ``rng`` and ``extra`` only.
    rng : numpy.random.Generator, optional
        The data-order generator; its ``bit_generator.state`` is saved.
    extra : dict, optional
        The caller's run state (str keys): NumPy arrays, stored as arrays, and JSON-serializable values
        (numbers, strings, lists, dicts: epoch, batch index, settings...). Python floats round-trip exactly.

    Raises
    ------
    TypeError, ValueError
        On a bad argument (naming it); nothing is written.

    Notes
    -----
    A learning-rate schedule (a callable ``lr``) cannot be stored: the file records ``lr``
    as None and :func:`load` keeps the schedule the loading optimizer was built with.

    Examples
    --------
    See the module docstring.
    """
    rng_state = _rng_state(rng)
    if optimizer is None:
        ck = Checkpoint(0, 0, None, [], [], [], None, rng_state, {} if extra is None else extra)
    else:
        _check_optimizer(optimizer)
        state, config = optimizer.state, optimizer.config.to_dict()
        if callable(config["lr"]):
            config["lr"] = None

        def arrays(key: str, seq: Any) -> list | None:
            return None if seq is None else [to_numpy(x, f"{key}[{i}]") for i, x in enumerate(seq)]

        ck = Checkpoint(int(state.step), int(state.skipped), config, arrays("param", optimizer.params),
                        arrays("v", state.v), arrays("s", state.s), arrays("master", state.master), rng_state,
                        {} if extra is None else extra, arrays("s_max", state.s_max), float(state.mu_product))
    write(path, ck)


def write(path: Any, ck: Checkpoint) -> None:
    """Write ``ck`` (as :func:`read` returns it) atomically: :func:`save` below the optimizer.

    Parameters
    ----------
    path : str or os.PathLike
    ck : Checkpoint

    Raises
    ------
    TypeError
        On an ``extra`` that is not a dict of str keys to NumPy arrays and JSON values; nothing is written.
    """
    extra = ck.extra
    if not isinstance(extra, dict) or not all(isinstance(k, str) for k in extra):
        raise TypeError(f"extra must be a dict with str keys, got {type(extra).__name__}: {extra!r:.80}")
    arrays = {f"extra/{k}": v for k, v in extra.items() if isinstance(v, np.ndarray)}
    if any(a.dtype.hasobject for a in arrays.values()):
        raise TypeError("extra's arrays must hold numbers, not Python objects")
    try:
        values = json.loads(json.dumps({k: v for k, v in extra.items() if not isinstance(v, np.ndarray)}))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"extra must be JSON-serializable (numbers, strings, lists, dicts) or arrays: {exc}") from None
    for key, field in _GROUPS:
        arrays.update({f"{key}/{i}": a for i, a in enumerate(getattr(ck, field) or [])})
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "step": ck.step, "skipped": ck.skipped,
            "n_params": len(ck.params), "master": ck.master is not None, "s_max": ck.s_max is not None,
            "mu_product": ck.mu_product, "config": ck.config, "rng": ck.rng_state, "extra": values}
    write_atomic(path, arrays, meta)


def _check_optimizer(optimizer: Any) -> None:
    """``optimizer`` must be an :class:`adam_np.Adam` (checked by its interface: this module sits below
    :mod:`adam_np.optimizer`, which imports it for :meth:`~adam_np.Adam.save` and :meth:`~adam_np.Adam.load`)."""
    if not all(hasattr(optimizer, a) for a in ("params", "state", "config", "state_dict", "load_state_dict")):
        raise TypeError(f"optimizer must be an adam_np.Adam, got {type(optimizer).__name__}")
    if any(is_lazy(x) for x in optimizer.params):
        raise TypeError("optimizer holds Dask arrays: use adam_np.cluster.save_zarr / load_zarr, which write and "
                        "read them chunk-parallel on the workers (an .npz would gather everything here)")


def _rng_state(rng: Any) -> dict | None:
    if rng is None:
        return None
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng.bit_generator.state


def read(path: Any) -> Checkpoint:
    """Read and verify a checkpoint file without touching any optimizer.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`.

    Returns
    -------
    Checkpoint

    Raises
    ------
    CheckpointError
        (a ValueError) if the file is missing, not an ``.npz``, truncated, fails its sha256
        check, has another format version, or is internally inconsistent.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from adam_np import Adam
    >>> path = os.path.join(tempfile.mkdtemp(), "c.npz")
    >>> Adam([np.ones(3)]).save(path)
    >>> ck = read(path); ck.step, ck.params[0].shape
    (0, (3,))
    >>> with open(path, "r+b") as f:
    ...     _ = f.truncate(100)
    >>> read(path)
    Traceback (most recent call last):
    ...
    adam_np.checkpoint.CheckpointError: checkpoint ... is not a readable .npz file (truncated or corrupt): ...
    """
    path = os.fspath(path)
    members, meta = read_verified(path, FORMAT_NAME, FORMAT_VERSION)
    required = {"step", "skipped", "n_params", "master", "config", "rng", "extra"}
    if not required <= set(meta) or not isinstance(meta["n_params"], int) or not isinstance(meta["config"],
                                                                                              (dict, type(None))):
        raise CheckpointError(f"checkpoint {path!r} has incomplete metadata (needs {sorted(required)})")
    n = meta["n_params"]
    if not 0 <= n <= len(members):
        raise CheckpointError(f"checkpoint {path!r} has n_params {n}, but holds {len(members)} arrays")
    groups = {}
    for key, _ in _GROUPS:
        count = n if key not in ("master", "s_max") or meta.get(key) else 0
        names = [f"{key}/{i}" for i in range(count)]
        if any(name not in members for name in names):
            raise CheckpointError(f"checkpoint {path!r} lacks some of {names}")
        groups[key] = [members.pop(name) for name in names]
    extra = meta["extra"]
    if not isinstance(extra, dict):
        raise CheckpointError(f"checkpoint {path!r} has extra of type {type(extra).__name__}, expected a dict")
    arrays = {name.removeprefix("extra/"): members.pop(name) for name in list(members) if name.startswith("extra/")}
    if members or arrays.keys() & extra.keys():
        raise CheckpointError(f"checkpoint {path!r} has unexpected members {sorted(members) or sorted(arrays)}")
    for key in ("s", "s_max"):
        for i, a in enumerate(groups[key]):
            if a.dtype.kind == "f" and not bool(np.all(a >= 0)):  # False for NaN as for negative entries
                raise CheckpointError(f"checkpoint {path!r}: {key}[{i}] has negative or NaN entries; a second "
                                      "moment is >= 0")
    return Checkpoint(
        meta["step"], meta["skipped"], meta["config"], groups["param"], groups["v"], groups["s"],
        groups["master"] if meta["master"] else None, meta["rng"], {**extra, **arrays},
        groups["s_max"] if meta.get("s_max") else None, meta.get("mu_product", 1.0), path,
    )


def load(source: Any, optimizer: Any = None, *, rng: np.random.Generator | None = None) -> Checkpoint:
    """Restore ``optimizer`` (state and parameters, in place) and ``rng`` from a checkpoint.

    Everything is read and checked first; only then are the optimizer, its parameters and
    ``rng`` changed, so on any error nothing is loaded.

    Parameters
    ----------
    source : str, os.PathLike or Checkpoint
        A file written by :func:`save`, or what :func:`read` returned for one (a caller that checks its
        ``extra`` before loading reads the file once).
    optimizer : adam_np.Adam, optional
        Built over parameters of the same count, shapes and dtypes as the saved ones; its
        parameter arrays receive the saved values in place.
    rng : numpy.random.Generator, optional
        Receives the saved data-order state (the checkpoint must hold one, of the same
        bit generator).

    Returns
    -------
    Checkpoint
        What was read; ``extra`` holds the caller's run state.

    Raises
    ------
    CheckpointError
        (a ValueError) on an unreadable, corrupt, truncated, wrong-version or mismatched file.
    TypeError
        On a bad ``optimizer`` or ``rng`` argument.

    Examples
    --------
    See the module docstring.
    """
    if optimizer is not None:
        _check_optimizer(optimizer)
    _rng_state(rng)
    ck = source if isinstance(source, Checkpoint) else read(source)
    path = ck.path
    if optimizer is not None:
        state_dict, new_params = _state_dict(ck, optimizer)
    if rng is not None:
        if ck.rng_state is None:
            raise CheckpointError(f"checkpoint {path!r} holds no rng state, but rng was given")
        probe = type(rng.bit_generator)()
        try:
            probe.state = ck.rng_state
        except (TypeError, ValueError, KeyError, OverflowError) as exc:  # a hand-edited state's wrong keys/values
            raise CheckpointError(
                f"checkpoint {path!r}: its rng state does not fit {type(rng.bit_generator).__name__}: {exc}"
            ) from None
    if optimizer is not None:
        optimizer._check_writeable()
        saved = optimizer.state, optimizer.config
        try:
            optimizer.load_state_dict(state_dict)  # validates everything, then commits
        except (TypeError, ValueError) as exc:
            optimizer.state, optimizer.config = saved
            raise CheckpointError(f"checkpoint {path!r} does not match the optimizer: {exc}") from None
        for x, new in zip(optimizer.params, new_params):
            x[...] = new
    if rng is not None:
        rng.bit_generator.state = ck.rng_state
    return ck


def _state_dict(ck: Checkpoint, optimizer: Any) -> tuple[dict, list]:
    """The state dict for ``optimizer.load_state_dict`` and the new parameters, on the optimizer's backend."""
    path, params = ck.path, optimizer.params
    if ck.config is None:
        raise CheckpointError(f"checkpoint {path!r} holds no optimizer state")
    if len(ck.params) != len(params):
        raise CheckpointError(f"checkpoint {path!r} holds {len(ck.params)} parameters, the optimizer has {len(params)}")
    for i, (saved, x) in enumerate(zip(ck.params, params)):
        if tuple(saved.shape) != tuple(x.shape):
            raise CheckpointError(
                f"checkpoint {path!r}: param {i} has shape {saved.shape}, params[{i}] has {tuple(x.shape)}"
            )
        if str(saved.dtype) != str(x.dtype).removeprefix("torch."):  # float32 for NumPy's and torch's alike
            raise CheckpointError(f"checkpoint {path!r}: param {i} has dtype {saved.dtype}, params[{i}] has {x.dtype}")
    config = dict(ck.config)
    if config.get("lr") is None:
        if not callable(optimizer.config.lr):
            raise CheckpointError(f"checkpoint {path!r} was saved with an lr schedule; build the optimizer with one")
        config["lr"] = optimizer.config.lr
    xp, device = optimizer._xp, getattr(params[0], "device", None) if params else None

    def convert(arrays: list | None) -> list | None:
        return None if arrays is None else [xp.asarray(a, device=device) for a in arrays]

    return ({"version": 1, "step": ck.step, "skipped": ck.skipped, "v": convert(ck.v), "s": convert(ck.s),
             "master": convert(ck.master), "s_max": convert(ck.s_max), "mu_product": ck.mu_product,
             "config": config}, convert(ck.params))


# --- the file: atomic write, verified read (also what adam_np.cluster.zarr_checkpoint uses) ---------------------

STALE_AFTER = 3600.0
"""Seconds after which a temporary file of this package's naming counts as abandoned even when its writer cannot
be proven dead (it was written on another host, or its process id is in use again)."""


def _checksum(arrays: dict, meta: bytes) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    h.update(b"meta|")
    h.update(meta)
    return h.hexdigest()


def write_atomic(path: Any, arrays: dict, meta: dict) -> None:
    """Write ``arrays`` and JSON ``meta`` as one checksummed ``.npz``, atomically.

    The file is written to a temporary file in the same directory, flushed, fsynced, renamed over
    ``path`` with :func:`os.replace`, and the directory is fsynced: a process killed at any moment
    leaves either the old or the new file at ``path``; the temporary file such a kill leaves is removed by
    the next save to ``path`` (:func:`remove_stale_temps`).

    Parameters
    ----------
    path : str or os.PathLike
    arrays : dict of str to numpy.ndarray
    meta : dict
        JSON-serializable; should name a ``format`` and ``version`` for :func:`read_verified`.

    Examples
    --------
    See :func:`read_verified`.
    """
    path = os.fspath(path)
    meta_bytes = json.dumps(meta).encode("utf-8")
    digest = _checksum(arrays, meta_bytes)
    members = dict(arrays)
    members["meta"] = np.frombuffer(meta_bytes, dtype=np.uint8)
    members["sha256"] = np.frombuffer(digest.encode("ascii"), dtype=np.uint8)
    directory, name = os.path.split(os.path.abspath(path))
    remove_stale_temps(path)  # before writing: what killed saves left may be what a full disk needs
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.{_writer_tag()}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **members)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)


def _writer_tag() -> str:
    """``HOST-PID`` for temporary file names: 8 hex digits of this host's name's sha256, then this process's id."""
    return f"{hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]}-{os.getpid()}"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host may still run (True when that cannot be known)."""
    if pid == os.getpid() or os.name != "posix":  # Windows' os.kill would terminate the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: it runs, as another user
        return True
    return True


def remove_stale_temps(path: Any) -> list:
    """Remove the temporary files that interrupted :func:`write_atomic` calls for ``path`` left next to it.

    Only files named as :func:`write_atomic` names them (``.NAME.HOST-PID.XXXXXXXX.tmp``, or the older
    ``.NAME.XXXXXXXX.tmp``) are candidates, and of those only the ones no writer can still be using: written by
    a process of this host that no longer runs, or not modified for :data:`STALE_AFTER` seconds (another
    host's, or a process id in use again). A concurrent save's temporary file is left alone.

    Parameters
    ----------
    path : str or os.PathLike
        The file the temporary files were meant to replace.

    Returns
    -------
    list of str
        The files removed (errors while removing are ignored: the next save tries again).

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> left = os.path.join(d, ".run.npz.00000000-999999999.abcdefgh.tmp")  # a killed save's, long ago
    >>> open(left, "wb").close(); os.utime(left, (0, 0))
    >>> [os.path.basename(f) for f in remove_stale_temps(os.path.join(d, "run.npz"))]
    ['.run.npz.00000000-999999999.abcdefgh.tmp']
    """
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    pattern = re.compile(rf"\.{re.escape(name)}\.(?:([0-9a-f]{{8}})-([0-9]{{1,10}})\.)?[a-z0-9_]{{8}}\.tmp")
    host = _writer_tag().split("-")[0]
    removed = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry)
        if match is None:
            continue
        file = os.path.join(directory, entry)
        try:
            st = os.lstat(file)
            if not stat.S_ISREG(st.st_mode):
                continue
            dead = match[1] == host and not _alive(int(match[2]))
            if dead or time.time() - st.st_mtime > STALE_AFTER:
                os.remove(file)
                removed.append(file)
        except OSError:
            continue
    return removed


def fsync_dir(directory: str) -> None:
    """fsync ``directory`` so that a rename inside it is durable (a no-op where directories cannot be fsynced)."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds (Windows)
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover - file systems that refuse fsync on directories
        pass
    finally:
        os.close(dfd)


def read_verified(path: Any, format_name: str, version: int) -> tuple[dict, dict]:
    """Read an ``.npz`` written by :func:`write_atomic`, check its sha256, format name and version.

    Parameters
    ----------
    path : str or os.PathLike
    format_name : str
        The ``meta["format"]`` the file must declare.
    version : int
        The ``meta["version"]`` it must declare.

    Returns
    -------
    members : dict of str to numpy.ndarray
        The arrays (without ``meta`` and ``sha256``).
    meta : dict
        The JSON metadata.

    Raises
    ------
    CheckpointError
        On a missing, unreadable, truncated or corrupt file, or another format or version.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npz")
    >>> write_atomic(path, {"a": np.arange(3)}, {"format": "demo", "version": 1})
    >>> members, meta = read_verified(path, "demo", 1)
    >>> members["a"], meta["format"]
    (array([0, 1, 2]), 'demo')
    """
    path = os.fspath(path)
    try:
        z = np.load(path, allow_pickle=False)
        if not hasattr(z, "files"):
            raise CheckpointError(f"checkpoint {path!r} is a .npy array, not an .npz checkpoint")
        with z:
            members = {k: z[k] for k in z.files}
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path!r} does not exist") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"checkpoint {path!r} is not a readable .npz file (truncated or corrupt): {type(exc).__name__}: {exc}"
        ) from None
    if not all(isinstance(a, np.ndarray) for a in members.values()):  # NpzFile hands non-.npy members as bytes
        raise CheckpointError(f"checkpoint {path!r} has members that are not .npy arrays: the file is corrupt")
    if "meta" not in members or "sha256" not in members:
        raise CheckpointError(f"checkpoint {path!r} has no 'meta'/'sha256' members: not an adam_np checkpoint")
    meta_bytes = members.pop("meta").tobytes()
    digest = members.pop("sha256").tobytes().decode("ascii", errors="replace")
    if _checksum(members, meta_bytes) != digest:
        raise CheckpointError(f"checkpoint {path!r} fails its sha256 check: the file is corrupt")
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CheckpointError(f"checkpoint {path!r} has unreadable metadata: {exc}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path!r} has metadata that is not a JSON object")
    if meta.get("format") != format_name or meta.get("version") != version:
        raise CheckpointError(
            f"checkpoint {path!r} has format {meta.get('format')!r} version {meta.get('version')!r}, "
            f"expected {format_name!r} version {version}"
        )
    return members, meta
