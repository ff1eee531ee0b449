"""Tools that check adam_np and other frameworks against each other.

:mod:`.oracle` (50-digit Algorithm 1), :mod:`.presets` (torch, optax, Keras, D2L arithmetic),
:mod:`.crosscheck` (run the same problem through the frameworks) and :mod:`.interop` (torch state dicts).
"""
