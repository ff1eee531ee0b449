"""The ``adam-np bench`` sub-command: one Adam step against torch, optax, naive NumPy and the memory roof."""

from __future__ import annotations

from typing import Any

__all__ = ["add"]


def add(subparsers: Any) -> None:
    """Register ``adam-np bench`` (its flags are :func:`adam_np.verify.bench.add_arguments`).

    Parameters
    ----------
    subparsers : argparse sub-parsers action
    """
    from ..verify import bench

    parser = subparsers.add_parser("bench", help="benchmark one Adam step (kernels vs torch/optax/NumPy)",
                                   description=bench.__doc__.splitlines()[0])
    bench.add_arguments(parser)
    parser.set_defaults(func=bench.main)
