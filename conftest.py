"""Repository-wide pytest setup: doctests (adam_np, docs/*.md) find the airfoil data as tests do.

``$ADAM_NP_AIRFOIL`` defaults to ``../shared/data/airfoil_self_noise.dat`` next to the repository
root, and ``$ADAM_NP_CACHE`` points at a temporary folder, so no example downloads or caches anything.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

AIRFOIL_DEFAULT = Path(__file__).resolve().parent.parent / "shared" / "data" / "airfoil_self_noise.dat"


@pytest.fixture(autouse=True)
def _airfoil_env(monkeypatch, tmp_path_factory):
    if not os.environ.get("ADAM_NP_AIRFOIL"):
        monkeypatch.setenv("ADAM_NP_AIRFOIL", str(AIRFOIL_DEFAULT))
    monkeypatch.setenv("ADAM_NP_CACHE", str(tmp_path_factory.mktemp("adam-np-cache")))
