"""One training epoch on a Zarr store larger than the cluster's memory (adam-np train --data), against its read roof.

Usage: python benchmarks/bench_train_dask.py [--store PATH.zarr --rows 27000000 --features 10 --results DIR]
The implementation and the options are in :mod:`adam_np.cluster.bench_train`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adam_np.cluster.bench_train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
