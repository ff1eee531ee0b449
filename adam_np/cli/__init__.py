"""The ``adam-np`` command line: a thin argparse layer over the library.

One module per sub-command (:mod:`.train`, :mod:`.make_data`, :mod:`.plot`, :mod:`.bench`,
:mod:`.crosscheck`), each with an ``add(subparsers)`` that builds its parser and sets ``func``, the function
that runs it and returns the exit status. They import the library lazily, so ``adam-np train`` loads
neither torch nor jax.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from . import bench, crosscheck, make_data, plot, train

__all__ = ["build_parser", "main"]

_COMMANDS = (bench, train, make_data, plot, crosscheck)


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
    for command in _COMMANDS:
        command.add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``adam-np`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` if omitted.

    Returns
    -------
    int
        The exit status (argparse errors exit with status 2 on their own; 130 after Ctrl-C, with one line
        instead of a traceback).

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
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{parser.prog} {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
