"""The LoRA strategies on the streams Avalanche's benchmark generators build, beside Naive.

``nc_benchmark`` (the generator behind the classic SplitMNIST, SplitCIFAR...) is what every
other test here runs on; these are the newer generators and the online streams.
"""

import pytest
import torch
from avalanche.benchmarks.scenarios.online import split_online_stream
from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
from avalanche.benchmarks.scenarios.task_aware import task_incremental_benchmark
from avalanche.benchmarks.scenarios.validation_scenario import benchmark_with_validation_stream
from avalanche.training.plugins import ReplayPlugin

from compat_runs import CI_KINDS, TargetsSeen, build, digits_class_incremental_benchmark, train_on

pytestmark = pytest.mark.slow  # trains on each of Avalanche's benchmark generators


@pytest.fixture(scope="module")
def new_api_benchmark():
    return digits_class_incremental_benchmark(5)


@pytest.mark.parametrize("kind", CI_KINDS)
def test_class_incremental_benchmark_with_replay(kind, new_api_benchmark):
    """The README's example: a stream without task labels, rehearsal, evaluation."""
    probe = TargetsSeen()
    strategy = build(kind, plugins=[ReplayPlugin(mem_size=60), probe])
    stream = list(new_api_benchmark.train_stream)[:2]
    train_on(strategy, stream)
    results = strategy.eval(new_api_benchmark.test_stream[:2])
    assert 0.0 <= results["Top1_Acc_Stream/eval_phase/test_stream"] <= 1.0
    old = set(stream[0].classes_in_this_experience)
    assert old <= probe.seen[(1, "train")]
    if kind == "litelora":
        assert old <= probe.seen[(1, "selection")]


@pytest.mark.parametrize("kind", ["litelora", "per_task", "share"])
def test_task_incremental_on_a_stream_without_task_labels_is_refused_first(kind, new_api_benchmark):
    strategy = build(kind, task_incremental=True)
    before = {k: v.clone() for k, v in strategy.model.state_dict().items() if torch.is_tensor(v)}
    with pytest.raises(ValueError, match="needs task labels"):
        strategy.train(new_api_benchmark.train_stream[0])
    after = strategy.model.state_dict()
    assert before.keys() == {k for k, v in after.items() if torch.is_tensor(v)}
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("kind", CI_KINDS)
@pytest.mark.parametrize("generator", ["nc_benchmark", "class_incremental_benchmark"])
def test_benchmark_with_validation_stream(kind, generator, ci_benchmark, new_api_benchmark):
    base = ci_benchmark if generator == "nc_benchmark" else new_api_benchmark
    bm = benchmark_with_validation_stream(base, validation_size=0.2, seed=0)
    strategy = build(kind)
    for exp, valid in list(zip(bm.train_stream, bm.valid_stream))[:2]:
        strategy.train(exp, eval_streams=[valid])
    results = strategy.eval(bm.valid_stream[:2])
    assert 0.0 <= results["Top1_Acc_Stream/eval_phase/valid_stream"] <= 1.0


def _task_incremental_new_api(with_validation: bool):
    bm = digits_class_incremental_benchmark(5)
    if with_validation:
        bm = benchmark_with_validation_stream(bm, validation_size=0.2, seed=0)
    return with_classes_timeline(task_incremental_benchmark(bm))


@pytest.mark.parametrize("kind", ["litelora", "per_task"])
@pytest.mark.parametrize("with_validation", [False, True])
def test_task_incremental_newer_generators(kind, with_validation):
    """``task_incremental_benchmark`` (+ ``benchmark_with_validation_stream``) on the newer
    API: the class timeline is a set, which Avalanche 0.6's own multi-head cannot index with,
    so Naive (and Share, on that head) fail there; the bank's head sorts it."""
    bm = _task_incremental_new_api(with_validation)
    strategy = build(kind, task_incremental=True)
    train_on(strategy, list(bm.train_stream)[:2])
    name = "valid_stream" if with_validation else "test_stream"
    results = strategy.eval(getattr(bm, name)[:2])
    accuracies = [v for k, v in results.items() if k.startswith(f"Top1_Acc_Stream/eval_phase/{name}")]
    assert accuracies and all(0.0 <= a <= 1.0 for a in accuracies)
    assert sorted(strategy.model.head.classifiers) == ["0", "1"]  # one head per task label


@pytest.mark.parametrize("kind", ["naive", "share"])
def test_task_incremental_newer_generators_fail_on_avalanches_multi_head(kind):
    strategy = build(kind, task_incremental=True)
    with pytest.raises(IndexError, match="got set"):
        train_on(strategy, list(_task_incremental_new_api(False).train_stream)[:1])


@pytest.mark.parametrize("kind", CI_KINDS)
def test_online_stream_with_boundaries_grows_one_adapter_per_experience(kind, ci_benchmark):
    stream = split_online_stream(list(ci_benchmark.train_stream)[:2], 100, access_task_boundaries=True, seed=0)
    strategy = build(kind, plugins=[ReplayPlugin(mem_size=60)], train_epochs=1)
    selections = []
    for sub in stream:
        strategy.train(sub)
        selection = [p for p in strategy.plugins if type(p).__name__ == "GateSelectionPlugin"]
        selections += [p.last_steps for p in selection if p.last_steps]
    if kind != "naive":
        model = strategy.model
        assert model.candidate is None
        assert len(model.adapter_names) + len(model.pruned_adapters) == 2  # one per experience
    if kind == "litelora":
        assert len(selections) == 1  # once, at the end of the second experience


def test_online_stream_without_boundaries_is_refused_with_the_fix(ci_benchmark):
    stream = split_online_stream(list(ci_benchmark.train_stream)[:1], 100, access_task_boundaries=False)
    naive, lite = build("naive"), build("litelora")
    first = next(iter(stream))
    naive.train(first)  # Naive has nothing per experience to keep
    with pytest.raises(ValueError, match="access_task_boundaries=True"):
        lite.train(first)
    assert lite.model.adapter_names == []


def test_avalanche_dill_checkpoint_fails_even_for_naive(ci_benchmark, tmp_path):
    """Why the README points to this package's checkpoints (save_checkpoint / train_stream)."""
    from avalanche.checkpointing import save_checkpoint

    strategy = build("naive")
    strategy.train(ci_benchmark.train_stream[0])
    with pytest.raises(Exception, match="pickle"):
        save_checkpoint(strategy, str(tmp_path / "avalanche.pkl"))


def test_the_readme_example_runs_end_to_end(capsys):
    """The README's LiteLoRA + ReplayPlugin + class_incremental_benchmark block, as written."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("<!-- example: avalanche-compat -->", 1)[1]
    code = block.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    out = capsys.readouterr().out
    accuracy = float(out.split("accuracy ", 1)[1].split()[0])
    assert 0.5 < accuracy <= 1.0  # 10 classes: far above chance, with rehearsal
    assert "adapters kept ['adapter_0'" in out
