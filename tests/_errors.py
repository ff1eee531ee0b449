"""NaN-aware worst-case error over several arrays (Python's ``max`` skips NaN after the first element)."""

from __future__ import annotations

import numpy as np

from conftest import normwise_rel_err


def worst_normwise(xs, refs) -> float:
    """The largest :func:`normwise_rel_err` over pairs of arrays; AssertionError if any is not finite."""
    errs = np.array([normwise_rel_err(a, b) for a, b in zip(xs, refs, strict=True)])
    assert errs.size and np.all(np.isfinite(errs)), f"non-finite normwise errors: {errs}"
    return float(np.max(errs))
