"""What the sub-commands share: argument types, the data flags, input and output checks, loading.

Two kinds of errors leave a sub-command with status 2: a flag's syntax (``parser.error``, with argparse's usage
block) and a data or file problem (:func:`fail`: one line naming the flag or file, no usage block).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
from typing import Any, NoReturn

EXTRAS = {"dask": ("dask", "distributed", "zarr"), "numba": ("numba",), "gpu": ("cupy",)}
"""The optional stacks of the package: extra name -> the modules it installs."""


def fail(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """Print ``PROG: error: message`` on one line (no usage block) and exit with status 2.

    For data and file errors; flag syntax errors keep argparse's ``parser.error`` and its usage block.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The sub-command's parser (for its ``prog``).
    message : str
        Names the flag or file and what is wrong.

    Raises
    ------
    SystemExit
        Always, with code 2.
    """
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _importable(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_extra(parser: argparse.ArgumentParser, extra: str, why: str) -> None:
    """Exit 2 with one line naming the extra to install unless all of its modules can be imported.

    Checked before any work is done, so nothing computed is lost to a missing optional package.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    extra : {"dask", "numba", "gpu"}
        A key of :data:`EXTRAS`.
    why : str
        What needs it, e.g. ``"--data PATH.zarr"``.
    """
    missing = [m for m in EXTRAS[extra] if not _importable(m)]
    if missing:
        fail(parser, f"{why} needs {', '.join(missing)}: pip install \"adam-np[{extra}]\"")


def number(kind: type, low: float, strict: bool, what: str):
    """An argparse ``type=`` that parses ``kind`` and checks ``value > low`` (or ``>=``)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


positive_float = number(float, 0.0, True, "a number > 0")
nonneg_float = number(float, 0.0, False, "a number >= 0")
positive_int = number(int, 0, True, "an integer >= 1")
nonneg_int = number(int, 0, False, "an integer >= 0")


def seed(text: str) -> int | str:
    """``--seed``: an integer >= 0, or ``"random"`` (fresh entropy, drawn when the run starts)."""
    if text == "random":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0 or 'random', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0 or 'random', got {text!r}")
    return value


seed.__name__ = "seed"


def memory_limit(text: str) -> str:
    """``--memory-limit``: ``auto``, ``0`` (no limit), a byte count or a size such as ``2GiB``."""
    try:
        from ..cluster.local import parse_memory_limit
    except ImportError:  # no dask: the missing extra is named before the cluster starts
        return text
    try:
        return parse_memory_limit(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, 0 or a size such as 2GiB, got {text!r}") from None


memory_limit.__name__ = "memory limit"


def is_data_path(data: str) -> bool:
    """Whether ``--data`` names files (a ``.zarr`` store or ``.npy`` features) rather than a built-in set."""
    return data.rstrip("/").endswith((".zarr", ".npy"))


def _in_memory_data(text: str) -> str:
    if text in ("synthetic", "airfoil"):
        return text
    raise argparse.ArgumentTypeError(f"expected synthetic or airfoil, got {text!r}")


_in_memory_data.__name__ = "data"


def _data(text: str) -> str:
    if text in ("synthetic", "airfoil") or is_data_path(text):
        return text
    raise argparse.ArgumentTypeError(f"expected synthetic, airfoil, PATH.zarr or PATH.npy, got {text!r}")


def add_data_args(p: argparse.ArgumentParser, *, beyond_memory: bool = False) -> None:
    """``--data``, ``--data-path``, ``--seed``, ``--backend``; ``beyond_memory`` (train) also takes Zarr/.npy data."""
    files = (", or data larger than memory on a Dask cluster: PATH.zarr (from adam-np make-data) or PATH.npy "
             "features with --labels") if beyond_memory else ""
    p.add_argument("--data", type=_data if beyond_memory else _in_memory_data, default="synthetic",
                   help="synthetic (offline default, 1500x5 with a known solution), airfoil (the UCI data set the "
                        f"book uses, shipped with the package){files}")
    p.add_argument("--data-path", metavar="FILE", help="airfoil_self_noise.dat to use with --data airfoil")
    p.add_argument("--seed", type=seed, default=None,
                   help="seed of the run's random generator: an integer >= 0 (default 0, or the checkpoint's "
                        "with --resume) or 'random' for a fresh one (the seed used is recorded in --json and "
                        "checkpoints)")
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy", help="array library (default numpy)")


def check_output(parser: argparse.ArgumentParser, flag: str, path: str, *, is_dir: bool = False,
                 suffix: str | None = None, inputs: dict | None = None) -> None:
    """Exit 2 naming ``flag`` unless ``path`` can be written: checked before any work is done.

    The folder that will hold ``path`` must exist and be writeable (no folders are created at arbitrary
    places; ``is_dir=True`` means ``path`` itself is that folder, which may be new if its parent exists), and
    ``path`` must not be one of ``inputs`` (the same file after resolving links) or lie inside an input folder.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    flag : str
        The output flag, e.g. ``"--checkpoint"``.
    path : str
    is_dir : bool, default False
    suffix : str, optional
        Required file name ending, e.g. ``".png"``.
    inputs : dict, optional
        Input flag -> path (None entries ignored).
    """
    if suffix is not None and not path.lower().endswith(suffix):
        parser.error(f"argument {flag}: expected a file name ending in {suffix}, got {path!r}")
    if not is_dir and os.path.isdir(path):
        fail(parser, f"argument {flag}: {path!r} is a directory, expected a file")
    if is_dir and os.path.exists(path) and not os.path.isdir(path):
        fail(parser, f"argument {flag}: {path!r} is not a directory")
    folder = os.path.abspath(path) if is_dir and os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        blocker = folder
        while not os.path.exists(blocker) and os.path.dirname(blocker) != blocker:
            blocker = os.path.dirname(blocker)
        if not os.path.isdir(blocker):
            fail(parser, f"argument {flag}: {blocker!r} (on the way to {path!r}) is not a directory")
        fail(parser, f"argument {flag}: the folder {folder!r} does not exist (create it first)")
    if not os.access(folder, os.W_OK | os.X_OK):
        fail(parser, f"argument {flag}: the folder {folder!r} is not writeable")
    real = os.path.realpath(path)
    for in_flag, in_path in (inputs or {}).items():
        if in_path is None or "://" in str(in_path):
            continue
        in_real = os.path.realpath(in_path)
        same = os.path.exists(path) and os.path.exists(in_path) and os.path.samefile(path, in_path)
        if same or real == in_real or real.startswith(in_real.rstrip(os.sep) + os.sep):
            fail(parser, f"argument {flag}: {path!r} is the input {in_flag} {in_path!r}; "
                         "refusing to overwrite the data")


def load(args: argparse.Namespace) -> tuple[Any, Any]:
    """Features and labels as the flags ask, or a parser error (exit 2) naming the flag."""
    from ..book.data import AirfoilError, get_data_ch7, make_synthetic
    from ..core._xp import namespace_for

    parser = args._parser
    try:
        xp = namespace_for(args.backend)
    except RuntimeError as exc:
        fail(parser, f"argument --backend: {exc}")
    if is_data_path(args.data):
        parser.error(f"argument --data: {args.data!r}: files beyond memory are for adam-np train only")
    if args.data_path is not None and args.data != "airfoil":
        parser.error("argument --data-path: only used with --data airfoil")
    if args.data_path is not None and os.path.isdir(args.data_path):
        fail(parser, f"argument --data-path: {args.data_path!r} is a directory, expected the airfoil data file")
    if args.data == "synthetic":
        data = make_synthetic(seed=args.seed if isinstance(args.seed, int) else 0, xp=xp)
        return data.features, data.labels
    try:
        return get_data_ch7(args.data_path, xp=xp, progressbar=not getattr(args, "quiet", False))
    except (AirfoilError, OSError) as exc:
        fail(parser, f"argument {'--data' if args.data_path is None else '--data-path'}: {exc}")


def add_cluster_args(p: argparse.ArgumentParser, *, labels: bool = True) -> None:
    """``--scheduler``, ``--workers``, ``--memory-limit`` (and ``--labels``): where data beyond memory is processed."""
    g = p.add_argument_group("cluster", "for data beyond memory: where the data are processed")
    if labels:
        g.add_argument("--labels", metavar="PATH.npy", help="labels for --data PATH.npy features")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: start a local cluster)")
    g.add_argument("--workers", type=positive_int, help="workers of the local cluster (default 2)")
    g.add_argument("--memory-limit", type=memory_limit,
                   help="memory per local worker: auto, 0 (no limit) or a size such as 2GiB (default auto)")


CONNECT_TIMEOUT_S = 10
"""How long ``--scheduler`` may take to answer before the command gives up (exit 2)."""


def _check_address(parser: argparse.ArgumentParser, address: str) -> None:
    """Exit 2 unless ``address`` reads as a scheduler address (``tcp://host:port``, ``tls://...``, ``host:port``)."""
    from urllib.parse import urlsplit

    url = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        port = url.port
    except ValueError:
        port = None
    if url.scheme not in ("tcp", "tls", "inproc", "ucx", "ws", "wss") or not url.hostname or port is None:
        parser.error(f"argument --scheduler: expected a scheduler address such as tcp://10.0.0.5:8786, "
                     f"got {address!r}")


class cluster_client:
    """A context manager: a client on ``args.scheduler``, or on a new local cluster; one line (exit 2) naming
    ``--scheduler`` when it cannot be reached or is not a Dask scheduler."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.context = None
        parser = args._parser
        if args.scheduler is not None:
            for flag in ("workers", "memory_limit"):
                if getattr(args, flag, None) is not None:
                    parser.error(f"argument --{flag.replace('_', '-')}: only for a local cluster, not with --scheduler "
                                 "(the scheduler's workers are already running)")
            _check_address(parser, args.scheduler)

    def __enter__(self) -> Any:
        from ..cluster.local import local_client

        args = self.args
        if args.scheduler is not None:
            self.context = local_client(args.scheduler, timeout=CONNECT_TIMEOUT_S)
        else:
            # two threads a worker: a chunk that loads does not hold up the gradient of the chunk in use
            self.context = local_client(n_workers=args.workers or 2, threads_per_worker=2, processes=True,
                                        memory_limit=getattr(args, "memory_limit", None) or "auto")
        try:
            return self.context.__enter__()
        except Exception as exc:  # OSError, TimeoutError, a non-Dask server's garbage (MemoryError, ValueError...)
            if args.scheduler is None:
                raise
            fail(args._parser, f"argument --scheduler: cannot use {args.scheduler!r}: {str(exc)[:300]}")

    def __exit__(self, *exc: Any) -> Any:
        return self.context.__exit__(*exc)
