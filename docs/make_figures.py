"""Regenerate the tutorial's figures in docs/figures/ (the only PNGs the repository keeps).

Usage: ``python docs/make_figures.py`` from the repository root. It trains on the airfoil data
(found as ``adam_np.book.data.load_airfoil`` finds it: ``$ADAM_NP_AIRFOIL``, the cache, or a download),
falling back to ``../shared/data/airfoil_self_noise.dat`` next to the repository.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adam_np.book.data import get_data_ch7
from adam_np.book.plot import make_figures


def main() -> None:
    shared = ROOT.parent / "shared" / "data" / "airfoil_self_noise.dat"
    if not os.environ.get("ADAM_NP_AIRFOIL") and shared.is_file():
        os.environ["ADAM_NP_AIRFOIL"] = str(shared)
    features, labels = get_data_ch7()
    for path in make_figures(ROOT / "docs" / "figures", features, labels, seed=0):
        print(path.relative_to(ROOT), path.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
