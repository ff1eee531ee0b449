"""Timing scripts and memory roofs, outside the package: ``python benchmarks/bench_step.py`` and the others.

They import :mod:`adam_np`; nothing in :mod:`adam_np` imports them. Importable as ``benchmarks.*`` from the
repository root (the tests do), runnable as scripts (each puts the repository root on ``sys.path``).
"""
