"""The math: :class:`AdamConfig`, :class:`AdamState`, :func:`init`, :func:`update` and the variants.

Pure functions on any array-API namespace ``xp``; the only backend-aware module is ``_xp``.
Nothing here imports from the rest of the package.
"""
