"""One Adam step on Dask arrays over a 2-worker LocalCluster, against the cluster's roof and numba in one process.

Usage: python benchmarks/bench_dask.py [--n 100000000 --chunk 10000000 --repeats 7 --results DIR]
The implementation and the options are in :mod:`adam_np.cluster.bench`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adam_np.cluster.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
