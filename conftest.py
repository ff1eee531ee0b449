"""Repository-wide pytest setup: no example downloads or caches anything.

``$ADAM_NP_CACHE`` points at a temporary folder and ``$ADAM_NP_AIRFOIL`` is unset, so doctests (adam_np,
docs/*.md, README.md) read the airfoil file shipped inside the package, as a user's offline run does.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _airfoil_env(monkeypatch, tmp_path_factory):
    monkeypatch.delenv("ADAM_NP_AIRFOIL", raising=False)
    monkeypatch.setenv("ADAM_NP_CACHE", str(tmp_path_factory.mktemp("adam-np-cache")))
