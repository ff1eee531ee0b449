"""Regenerate the tutorial's figures in docs/figures/ (the only PNGs the repository keeps).

Usage: ``python docs/make_figures.py`` from the repository root. It trains on the airfoil data shipped
with the package (as ``adam_np.book.data.load_airfoil`` finds it), so it runs offline.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adam_np.book.data import get_data_ch7
from adam_np.book.plot import make_figures


def main() -> None:
    features, labels = get_data_ch7()
    for path in make_figures(ROOT / "docs" / "figures", features, labels, seed=0):
        print(path.relative_to(ROOT), path.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
