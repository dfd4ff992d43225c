"""A pruned candidate stays visible with the logit that decided (issue 26, item 7)."""

import pytest

from avalanche_litelora import LiteLoRAStrategy
from avalanche_litelora.training.checkpoint import load_checkpoint, save_checkpoint
from avalanche_litelora import PruneClosedCandidatePlugin
from builders import digits_benchmark, lite_kwargs, sgd, single_thread, tiny_mlp

one_thread = pytest.fixture(scope="module", autouse=True)(single_thread)


def _lite():
    model = tiny_mlp()
    # the lambda and gate rate at which this stream prunes (as tests/training/test_checkpoint.py)
    return LiteLoRAStrategy(model=model, optimizer=sgd(model),
                            **lite_kwargs(train_epochs=2, lambda_sparsity=0.05, selection_lr=0.02))


def _prune(strategy) -> PruneClosedCandidatePlugin:
    return next(p for p in strategy.plugins if isinstance(p, PruneClosedCandidatePlugin))


def test_each_pruned_candidate_keeps_its_closed_logit_and_it_survives_a_checkpoint(tmp_path):
    benchmark = digits_benchmark(5)
    strategy = _lite()
    for experience in benchmark.train_stream[:3]:
        strategy.train(experience)
    pruned = strategy.pruned_adapters
    assert pruned, "this stream and lambda prune a candidate"
    logits = _prune(strategy).pruned_logits
    assert sorted(logits) == sorted(pruned)
    assert all(value <= 0 for value in logits.values())  # closed: that is why it went
    assert not set(pruned) & set(strategy.gate_logits())  # the model's read-out no longer has it
    save_checkpoint(strategy, tmp_path / "c.pt")
    resumed = _lite()
    load_checkpoint(resumed, tmp_path / "c.pt")
    assert _prune(resumed).pruned_logits == logits


def test_a_checkpoint_state_without_logits_still_loads():
    plugin = PruneClosedCandidatePlugin()
    plugin.load_checkpoint_state({"decisions": [["adapter_1", 1]]})
    assert plugin.decisions == [("adapter_1", 1)] and plugin.pruned_logits == {}


def test_the_strategy_reads_out_pruned_candidates_beside_the_kept_adapters_on_request():
    strategy = _lite()
    for experience in digits_benchmark(5).train_stream[:3]:
        strategy.train(experience)
    pruned, kept = strategy.pruned_adapters, strategy.gate_logits()
    every = strategy.gate_logits(include_pruned=True)
    assert pruned and set(every) == set(kept) | set(pruned)
    assert {name: every[name] for name in pruned} == _prune(strategy).pruned_logits
    assert list(every) == sorted(every, key=lambda name: int(name.rsplit("_", 1)[1]))  # adapter order
