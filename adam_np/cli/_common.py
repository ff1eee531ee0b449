"""What the ``train`` and ``plot`` sub-commands share: argument types, the data flags, output checks, loading."""

from __future__ import annotations

import argparse
import math
import os
from typing import Any


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


def is_data_path(data: str) -> bool:
    """Whether ``--data`` names files (a ``.zarr`` store or ``.npy`` features) rather than a built-in set."""
    return data.rstrip("/").endswith((".zarr", ".npy"))


def _data(text: str) -> str:
    if text in ("synthetic", "airfoil") or is_data_path(text):
        return text
    raise argparse.ArgumentTypeError(f"expected synthetic, airfoil, PATH.zarr or PATH.npy, got {text!r}")


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=_data, default="synthetic",
                   help="synthetic (offline default, 1500x5 with a known solution), the UCI airfoil data "
                        "(path from --data-path, $ADAM_NP_AIRFOIL, the cache, or a download), or data larger "
                        "than memory: PATH.zarr (from adam-np make-data) or PATH.npy features with --labels "
                        "(train only: on a Dask cluster)")
    p.add_argument("--data-path", metavar="FILE", help="airfoil_self_noise.dat to use with --data airfoil")
    p.add_argument("--seed", type=nonneg_int, default=None, help="seed of the run's random generator (default: fresh)")
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy", help="array library (default numpy)")


def _nearest_existing(path: str) -> str:
    """``path`` or its nearest ancestor that exists (folders the plots create on the way are missing)."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def check_output(parser: argparse.ArgumentParser, flag: str, path: str, *, is_dir: bool = False,
                  make_parents: bool = False, suffix: str | None = None) -> None:
    """A parser error naming ``flag`` unless ``path`` can be written (checked before any training)."""
    if suffix is not None and not path.lower().endswith(suffix):
        parser.error(f"argument {flag}: expected a file name ending in {suffix}, got {path!r}")
    if not is_dir and os.path.isdir(path):
        parser.error(f"argument {flag}: {path!r} is a directory, expected a file")
    if is_dir and os.path.exists(path) and not os.path.isdir(path):
        parser.error(f"argument {flag}: {path!r} is not a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if make_parents:
        parent = _nearest_existing(parent)
    elif not os.path.exists(parent):
        parser.error(f"argument {flag}: the directory {parent!r} of {path!r} does not exist")
    if not os.path.isdir(parent):
        parser.error(f"argument {flag}: {parent!r} (on the way to {path!r}) is not a directory")


def load(args: argparse.Namespace) -> tuple[Any, Any]:
    """Features and labels as the flags ask, or a parser error (exit 2) naming the flag."""
    from ..book.data import AirfoilError, get_data_ch7, make_synthetic
    from ..core._xp import namespace_for

    parser = args._parser
    try:
        xp = namespace_for(args.backend)
    except RuntimeError as exc:
        parser.error(f"argument --backend: {exc}")
    if is_data_path(args.data):
        parser.error(f"argument --data: {args.data!r}: files beyond memory are for adam-np train only")
    if args.data_path is not None and args.data != "airfoil":
        parser.error("argument --data-path: only used with --data airfoil")
    if args.data_path is not None and os.path.isdir(args.data_path):
        parser.error(f"argument --data-path: {args.data_path!r} is a directory, expected the airfoil data file")
    if args.data == "synthetic":
        data = make_synthetic(seed=0 if args.seed is None else args.seed, xp=xp)
        return data.features, data.labels
    try:
        return get_data_ch7(args.data_path, xp=xp, progressbar=not getattr(args, "quiet", False))
    except (AirfoilError, FileNotFoundError) as exc:
        parser.error(f"argument {'--data' if args.data_path is None else '--data-path'}: {exc}")


def add_cluster_args(p: argparse.ArgumentParser) -> None:
    """``--scheduler``, ``--workers``, ``--memory-limit``: where data beyond memory is processed."""
    g = p.add_argument_group("cluster", "for --data PATH.zarr / PATH.npy: where the data are processed")
    g.add_argument("--labels", metavar="PATH.npy", help="labels for --data PATH.npy features")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: start a local cluster)")
    g.add_argument("--workers", type=positive_int, default=2, help="workers of the local cluster (default 2)")
    g.add_argument("--memory-limit", default="auto", help="memory per local worker, e.g. 2GiB (default auto)")


class cluster_client:
    """A context manager: a client on ``args.scheduler``, or on a new local cluster; a parser error (exit 2)
    naming ``--scheduler`` when it cannot be reached."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.context = None

    def __enter__(self) -> Any:
        from ..cluster.local import local_client

        args = self.args
        if args.scheduler is not None:
            self.context = local_client(args.scheduler, timeout=10)
        else:
            # two threads a worker: a chunk that loads does not hold up the gradient of the chunk in use
            self.context = local_client(n_workers=args.workers, threads_per_worker=2, processes=True,
                                        memory_limit=getattr(args, "memory_limit", "auto"))
        try:
            return self.context.__enter__()
        except (OSError, TimeoutError) as exc:
            args._parser.error(f"argument --scheduler: cannot reach {args.scheduler!r}: {exc}")

    def __exit__(self, *exc: Any) -> Any:
        return self.context.__exit__(*exc)
