"""adam_np: the Adam optimizer (Kingma & Ba, 2014) as a small, exact reference implementation.

The math is written once against the array API, so it runs on NumPy, CuPy, torch
tensors and ``array_api_strict`` alike:

>>> import numpy as np
>>> import adam_np
>>> x = np.array([1.0, 2.0])
>>> state = adam_np.init(x)
>>> x, state = adam_np.update(2 * x, state, x, adam_np.AdamConfig(lr=0.1))
>>> x
array([0.9, 1.9])
"""

from .core import variants
from .core.adam import EPS_MODES, NONFINITE_POLICIES, AdamConfig, AdamState, bias_corrections, init, update
from .optimizer import Adam
from .verify import presets

__version__ = "0.1.0"

__all__ = [
    "EPS_MODES",
    "NONFINITE_POLICIES",
    "Adam",
    "AdamConfig",
    "AdamState",
    "__version__",
    "bias_corrections",
    "init",
    "presets",
    "update",
    "variants",
]
