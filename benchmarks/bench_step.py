"""One Adam step, side by side: adam_np kernels, torch.optim.Adam, optax, naive NumPy and the memory roof.

Run from a checkout (``python benchmarks/bench_step.py --quick``) or, installed, ``adam-np bench``.
The implementation and the options are in :mod:`adam_np.verify.bench`; results go to ``--results``
(default ./results: CSV, JSON, Markdown table and a log-log PNG).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adam_np.verify.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
