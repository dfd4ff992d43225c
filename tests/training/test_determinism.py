"""Same seed, same run: metrics, gates and prune decisions repeat exactly on CPU.

Seeding is Avalanche's ``RNGManager.set_random_seeds`` (torch, numpy, Python ``random``).
Avalanche's training dataloader shuffles with torch's global generator (no generator of
its own), and the gate's Gumbel noise draws from it too: that one stream decides the run.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from avalanche.training.determinism.rng_manager import RNGManager

from avalanche_litelora import LiteLoRAStrategy, PerTaskLoRAStrategy
from avalanche_litelora import PruneClosedCandidatePlugin
from builders import digits_benchmark, lite_kwargs, sgd, single_thread, tiny_mlp

pytestmark = pytest.mark.slow  # repeats whole runs to compare them


one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)


@pytest.fixture(scope="module")
def stream():
    return digits_benchmark(5)


def _run(benchmark, seed, cls=LiteLoRAStrategy, disturb=None, n_experiences=3):
    model = tiny_mlp()  # seeds its own initialisation
    RNGManager.set_random_seeds(seed)
    if disturb is not None:
        disturb()
    kwargs = lite_kwargs(train_epochs=2)
    if cls is LiteLoRAStrategy:
        kwargs.update(lambda_sparsity=0.05, selection_lr=0.02)
    else:
        kwargs.pop("selection_mb_size")
    strategy = cls(model=model, optimizer=sgd(model), **kwargs)
    results = []
    for exp in list(benchmark.train_stream)[:n_experiences]:
        strategy.train(exp)
        results.append(strategy.eval(benchmark.test_stream))
    return {
        "results": results,
        "gates": strategy.gate_logits(),
        "magnitudes": strategy.magnitudes(),
        "active": strategy.active_adapters,
        "pruned": strategy.pruned_adapters,
        "decisions": [d for p in strategy.plugins if isinstance(p, PruneClosedCandidatePlugin) for d in p.decisions],
        "state": {k: v.clone() for k, v in strategy.model.state_dict().items() if torch.is_tensor(v)},
    }


def _same(a, b) -> bool:
    plain = [k for k in a if k != "state"]
    return (
        all(a[k] == b[k] for k in plain)
        and a["state"].keys() == b["state"].keys()
        and all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])
    )


def test_the_same_seed_repeats_metrics_gates_and_prune_decisions(stream):
    first = _run(stream, 1993)
    torch.rand(7), np.random.rand(3), random.random()  # whatever ran before must not matter
    second = _run(stream, 1993)
    assert _same(first, second)
    assert first["decisions"], "this configuration is meant to prune: the decisions are compared"

    other = _run(stream, 2000)
    assert not _same(first, other)


def test_the_run_follows_torchs_global_generator_only(stream):
    """Adapter initialisation, Avalanche's shuffling (a DataLoader without a generator of its
    own) and Gumbel noise draw from torch's global RNG; numpy and ``random`` play no part."""
    reference = _run(stream, 1993, cls=PerTaskLoRAStrategy, n_experiences=2)
    untouched = _run(stream, 1993, cls=PerTaskLoRAStrategy, n_experiences=2,
                     disturb=lambda: (np.random.rand(5), random.random()))
    shifted = _run(stream, 1993, cls=PerTaskLoRAStrategy, n_experiences=2, disturb=lambda: torch.rand(1))
    assert _same(reference, untouched)
    assert not _same(reference, shifted)
