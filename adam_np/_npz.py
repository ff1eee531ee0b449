r"""Atomic, checksummed ``.npz`` files: the I/O under :mod:`adam_np.checkpoint` and :mod:`adam_np.book.resume`.

A leaf module (NumPy and the standard library only), so that anything that saves arrays can use it
without importing the optimizer.

``write_atomic`` writes the arrays and a JSON ``meta`` dict plus a sha256 over every array's name, dtype,
shape and bytes (in name order) and the ``meta`` bytes; ``read_verified`` checks that digest, the format
name and the version before returning anything, and raises :class:`CheckpointError` otherwise.
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
from typing import Any

import numpy as np

__all__ = ["CheckpointError", "fsync_dir", "read_verified", "remove_stale_temps", "write_atomic"]

STALE_AFTER = 3600.0
"""Seconds after which a temporary file of this package's naming counts as abandoned even when its writer cannot
be proven dead (it was written on another host, or its process id is in use again)."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, corrupt, truncated, wrong version or mismatched."""


CheckpointError.__module__ = "adam_np.checkpoint"  # its public home, as tracebacks and docs name it


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
