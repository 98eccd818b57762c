"""Benchmarks of napari-dfcseg against classical clustering and the original DFC code.

Run everything with one command from the repository root::

    python -m benchmarks.run            # full suite (long)
    python -m benchmarks.run --quick    # tiny sizes, a few minutes

Raw results go to ``benchmarks/results/*.json``; ``docs/benchmarks.md`` and
``docs/img/bench_*.png`` are regenerated from them by :mod:`benchmarks.report`.
"""
