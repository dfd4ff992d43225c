"""Studies: each answers one question and writes its answer to docs/benchmarks/studies/<name>."""
