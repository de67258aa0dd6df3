"""The BENCHMARKS.md tables, one module each: ``build(settings)`` gives the table.

simulations/benchmarks.py lists them in the page's order; what they share is in
simulations/bench_runner.py.
"""
