"""Benchmarks (see BENCHMARKS.md): three suites, each its own command over its own JSON
(``python -m benchmarks.run`` over configs/suites.json, ``python -m benchmarks.text_suite`` over
configs/text.json, ``python -m benchmarks.paper`` over configs/paper.json), the harness they share
(``benchmarks/harness``) and one-question studies (``benchmarks/studies``). Tools live in ``tools/``."""
