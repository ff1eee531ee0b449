"""The ``adam-np crosscheck`` sub-command: adam_np's presets against the installed frameworks."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import nonneg_int, positive_float, positive_int

__all__ = ["add", "run"]


def add(subparsers: Any) -> None:
    """Register ``adam-np crosscheck``.

    Parameters
    ----------
    subparsers : argparse sub-parsers action
    """
    from ..verify.crosscheck import FRAMEWORKS, TOLERANCES

    variants = sorted({v for vs in FRAMEWORKS.values() for v in vs})
    p = subparsers.add_parser(
        "crosscheck", help="compare adam_np's presets with torch/optax on one random problem",
        description="Run the same random problem through adam_np and the installed frameworks and print "
                    "max abs / normwise relative difference and ulp distance per step window. Exit status 1 "
                    "when a comparison fails or a framework is missing.")
    p.add_argument("--against", choices=[*FRAMEWORKS, "all"], default="all", help="framework (default: all)")
    p.add_argument("--variant", nargs="+", choices=variants, metavar="VARIANT",
                   help=f"variants to run, among {', '.join(variants)} (default: all the framework has)")
    p.add_argument("--steps", type=positive_int, default=1000, help="number of steps (default 1000)")
    p.add_argument("--dtype", choices=list(TOLERANCES), default="float64", help="default float64")
    p.add_argument("--size", type=positive_int, default=256, help="number of parameters (default 256)")
    p.add_argument("--windows", type=positive_int, default=4, help="step windows per row group (default 4)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the random problem (default 0)")
    p.add_argument("--lr", type=positive_float, default=1e-2, help="learning rate for both sides (default 1e-2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``adam-np crosscheck``; returns the exit status (1 when a comparison fails or a framework is missing).

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
    """
    from ..verify.crosscheck import FRAMEWORKS, LEGEND, crosscheck, format_table

    against = list(FRAMEWORKS) if args.against == "all" else [args.against]
    try:
        rows = crosscheck(against=against, variants=args.variant, steps=args.steps, dtype=args.dtype, n=args.size,
                          seed=args.seed, windows=args.windows, lr=args.lr)
    except ValueError as exc:
        print(f"adam-np crosscheck: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(rows, args.dtype))
    print(LEGEND)
    bad = [r for r in rows if r.status != "pass"]
    if not rows:
        print("nothing was compared: no framework has the requested variants", file=sys.stderr)
        return 1
    for r in bad:
        what = "is not installed" if r.status == "missing" else f"differs by {r.max_rel:.1e} > {r.tol:.0e}"
        print(f"{r.status}: {r.framework} {r.variant} {what}", file=sys.stderr)
    return 1 if bad else 0
