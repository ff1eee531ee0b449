"""The ``adam-np make-data`` sub-command: a synthetic linear problem written chunk-parallel to a Zarr store."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ._common import add_cluster_args, fail, nonneg_float, nonneg_int, positive_int, require_extra

__all__ = ["add", "run"]


def add(subparsers: Any) -> None:
    """Register ``adam-np make-data``.

    Parameters
    ----------
    subparsers : argparse sub-parsers action
    """
    p = subparsers.add_parser(
        "make-data", help="write a synthetic linear-regression data set (Zarr) for adam-np train --data",
        description="Write X (rows x features, standard normal) and y = X w + b + noise to a new Zarr store, "
                    "chunk by chunk on a local Dask cluster (or --scheduler), with w and b stored as attributes.")
    p.add_argument("--rows", type=positive_int, required=True, help="number of rows (examples)")
    p.add_argument("--features", type=positive_int, required=True, help="number of features")
    p.add_argument("--out", metavar="PATH.zarr", required=True, help="the new store (must not exist)")
    p.add_argument("--noise", type=nonneg_float, default=0.01, help="standard deviation of the noise (default 0.01)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of X, w, b and the noise (default 0)")
    p.add_argument("--chunk-rows", type=positive_int, help="rows per chunk (default: 64 MiB of features)")
    p.add_argument("--float32", action="store_true", help="store float32 instead of float64")
    add_cluster_args(p, labels=False)
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    """Run ``adam-np make-data``; prints the store's attributes as JSON and returns the exit status.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
    """
    from ._common import cluster_client

    parser = args._parser
    require_extra(parser, "dask", "make-data")
    if not args.out.rstrip("/").endswith(".zarr"):
        parser.error(f"argument --out: expected a store name ending in .zarr, got {args.out!r}")
    if os.path.exists(args.out):
        fail(parser, f"argument --out: {args.out!r} exists; make-data writes a new store")
    parent = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(parent):
        fail(parser, f"argument --out: the folder {parent!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        fail(parser, f"argument --out: the folder {parent!r} is not writeable")
    from ..cluster.data import make_data

    with cluster_client(args):
        attrs = make_data(args.out, args.rows, args.features, noise=args.noise, seed=args.seed,
                          chunk_rows=args.chunk_rows, dtype="float32" if args.float32 else "float64")
    print(json.dumps({k: v for k, v in attrs.items() if k not in ("w_true",)} | {"path": args.out}))
    return 0
