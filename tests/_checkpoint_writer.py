"""Writer process for the SIGKILL test: saves checkpoint i = start+1, start+2, ... forever.

Usage: ``python tests/_checkpoint_writer.py PATH START``. Prints ``ready`` once, then the
number of every checkpoint whose :func:`adam_np.checkpoint.save` has returned.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adam_np import Adam, AdamState, checkpoint

SHAPES = ((192, 256), (300,))


def expected(i: int) -> tuple[list, list, list]:
    """Parameters and moments of checkpoint number ``i`` (recomputed by the test)."""
    params = [i + k + 1e-3 * np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
              for k, shape in enumerate(SHAPES)]
    return params, [0.5 * p for p in params], [p * p for p in params]


def main(path: str, start: int) -> None:
    params = [np.zeros(shape) for shape in SHAPES]
    opt = Adam(params, lr=0.01)
    os.write(1, b"ready\n")
    i = start
    while True:
        i += 1
        new, v, s = expected(i)
        for x, x_new in zip(params, new):
            x[...] = x_new
        opt.state = AdamState(i, v, s, 0)
        checkpoint.save(path, opt, rng=np.random.default_rng(i), extra={"i": i})
        os.write(1, f"{i}\n".encode())


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
