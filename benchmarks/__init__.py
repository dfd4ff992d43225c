"""Benchmark harness: ``python -m benchmarks.run`` (see BENCHMARKS.md)."""
