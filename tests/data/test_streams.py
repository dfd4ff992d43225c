import pytest

from avalanche_litelora import LiteLoRAStrategy
from avalanche_litelora.data.streams import subsample_benchmark
from builders import digits_benchmark, lite_kwargs, sgd, tiny_mlp


def test_subsample_keeps_experiences_classes_and_task_labels():
    full = digits_benchmark(5, task_labels=True)
    small = subsample_benchmark(full, 40, 10, seed=0)
    assert len(small.train_stream) == 5
    for big, cut in zip(full.train_stream, small.train_stream):
        assert len(cut.dataset) == 40
        assert cut.classes_in_this_experience == sorted(big.classes_in_this_experience)
        assert set(cut.dataset.targets_task_labels) == set(big.task_labels)
    assert [len(e.dataset) for e in small.test_stream] == [10] * 5


def test_subsampled_task_incremental_stream_trains_with_multi_head():
    small = subsample_benchmark(digits_benchmark(5, task_labels=True), 60, seed=0)
    mlp = tiny_mlp()
    strategy = LiteLoRAStrategy(model=mlp, optimizer=sgd(mlp), task_incremental=True, **lite_kwargs(train_epochs=2))
    for exp in list(small.train_stream)[:2]:
        strategy.train(exp)
    assert len(strategy.model.head.classifiers) == 2


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="positive"):
        subsample_benchmark(digits_benchmark(5), 0)
