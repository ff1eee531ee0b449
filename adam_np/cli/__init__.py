"""The ``adam-np`` command line: a thin argparse layer over the library.

Each sub-command is registered by an ``_add_<name>`` function that builds its parser and
sets ``func``, the function that runs it and returns the exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``adam-np`` argument parser with all sub-commands.

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> build_parser().prog
    'adam-np'
    """
    parser = argparse.ArgumentParser(
        prog="adam-np",
        description="Adam (Kingma & Ba, 2014) without a deep-learning framework.",
    )
    parser.add_argument("--version", action="version", version=f"adam-np {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


def _add_bench(subparsers) -> None:
    """``adam-np bench``: time one Adam step against torch, optax, naive NumPy and the memory roof."""
    from ..verify import bench

    parser = subparsers.add_parser("bench", help="benchmark one Adam step (kernels vs torch/optax/NumPy)",
                                   description=bench.__doc__.splitlines()[0])
    bench.add_arguments(parser)
    parser.set_defaults(func=bench.main)


_COMMANDS: list = [_add_bench]


def _add_train(subparsers: Any) -> None:
    from .train import add_train

    add_train(subparsers)


def _add_plot(subparsers: Any) -> None:
    from .train import add_plot

    add_plot(subparsers)


_COMMANDS += [_add_train, _add_plot]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``adam-np`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` if omitted.

    Returns
    -------
    int
        The exit status (argparse errors exit with status 2 on their own).

    Examples
    --------
    >>> main(["--version"])
    Traceback (most recent call last):
    ...
    SystemExit: 0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args) or 0)


def _add_crosscheck(subparsers) -> None:
    """``adam-np crosscheck``: compare the presets with the installed frameworks."""
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
    p.add_argument("--steps", type=int, default=1000, help="number of steps (default 1000)")
    p.add_argument("--dtype", choices=list(TOLERANCES), default="float64", help="default float64")
    p.add_argument("--size", type=int, default=256, help="number of parameters (default 256)")
    p.add_argument("--windows", type=int, default=4, help="step windows per row group (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-2, help="learning rate for both sides (default 1e-2)")
    p.set_defaults(func=_run_crosscheck)


def _run_crosscheck(args: argparse.Namespace) -> int:
    from ..verify.crosscheck import FRAMEWORKS, crosscheck, format_table

    against = list(FRAMEWORKS) if args.against == "all" else [args.against]
    try:
        rows = crosscheck(against=against, variants=args.variant, steps=args.steps, dtype=args.dtype, n=args.size,
                          seed=args.seed, windows=args.windows, lr=args.lr)
    except ValueError as exc:
        print(f"adam-np crosscheck: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(rows, args.dtype))
    bad = [r for r in rows if r.status != "pass"]
    if not rows:
        print("nothing was compared: no framework has the requested variants", file=sys.stderr)
        return 1
    for r in bad:
        what = "is not installed" if r.status == "missing" else f"differs by {r.max_rel:.1e} > {r.tol:.0e}"
        print(f"{r.status}: {r.framework} {r.variant} {what}", file=sys.stderr)
    return 1 if bad else 0


_COMMANDS.append(_add_crosscheck)
