"""A stream built with Avalanche's ``benchmark_from_datasets`` has no class timeline; Naive trains on it."""

import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from builders import digits_benchmark, lite_kwargs, sgd, tiny_mlp

from avalanche_litelora import LiteLoRAStrategy, train_stream


def _plain_stream():
    source = digits_benchmark(2)
    train = [exp.dataset for exp in source.train_stream]
    test = [exp.dataset for exp in source.test_stream]
    return benchmark_from_datasets(train=[train[0], train[1], train[1]], test=[test[0], test[1], test[1]])


def test_litelora_trains_and_judges_candidates_on_a_stream_without_class_timeline(tmp_path):
    benchmark = _plain_stream()
    assert not hasattr(benchmark.train_stream[0], "classes_in_this_experience")
    torch.manual_seed(0)
    model = tiny_mlp()
    strategy = LiteLoRAStrategy(model=model, optimizer=sgd(model), **lite_kwargs(train_epochs=1))
    train_stream(strategy, benchmark, checkpoint_dir=tmp_path)
    assert len(strategy.candidate_decisions) == 2  # experiences 1 and 2 were judged
    head_rows = strategy.adapter_model.head.classifier.out_features  # IncrementalClassifier
    seen = {int(y) for exp in benchmark.train_stream for y in exp.dataset.targets}
    assert head_rows >= max(seen) + 1
