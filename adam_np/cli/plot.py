"""The ``adam-np plot`` sub-command: the chapter's figures as PNG files."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ._common import add_data_args, check_output, load

__all__ = ["add", "run"]


def add(subparsers: Any) -> None:
    """Register ``adam-np plot``.

    Parameters
    ----------
    subparsers : argparse sub-parsers action
    """
    p = subparsers.add_parser(
        "plot", help="save the chapter's figures as PNG",
        description="Save loss.png (all six optimizers), weights.png (bias correction) and "
                    "trajectories.png (2-D paths) into a folder.")
    add_data_args(p)
    p.add_argument("--out", metavar="DIR", default=".", help="output folder (default: current)")
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    """Run ``adam-np plot``; returns the exit status.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
    """
    from ..book.plot import make_figures

    check_output(args._parser, "--out", args.out, is_dir=True, inputs={"--data-path": args.data_path})
    if args.seed == "random":
        import numpy as np

        args.seed = int(np.random.SeedSequence().entropy % 2**63)
    elif args.seed is None:
        args.seed = 0
    features, labels = load(args)
    start = time.perf_counter()
    try:
        paths = make_figures(args.out, features, labels, seed=args.seed)
    except OSError as exc:
        print(f"adam-np plot: error: argument --out: could not write into {args.out!r}: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    print(f"{len(paths)} figures in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0
