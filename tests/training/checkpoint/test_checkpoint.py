"""State-dict checkpoints: what they restore, what they refuse, how they are written."""

from __future__ import annotations

import argparse
import dataclasses
import io
import types
from pathlib import Path

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics, bwt_metrics, forgetting_metrics
from avalanche.training.determinism.rng_manager import RNGManager
from avalanche.training.plugins import EvaluationPlugin

import avalanche_litelora.training.checkpoint as checkpoint_module
from avalanche_litelora import LiteLoRAStrategy, LoRAClassifier, PerTaskLoRAStrategy, SequentialLoRAStrategy
from avalanche_litelora.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from avalanche_litelora.training.loop import train_stream
from avalanche_litelora.training.plugins import CheckpointPlugin
from avalanche_litelora import PruneClosedCandidatePlugin
from avalanche_litelora.share.strategy import ShareStrategy
from builders import MLP_TARGETS, digits_benchmark, lite_kwargs, sgd, single_thread, tiny_mlp

STRATEGIES = {
    # lambda and gate lr at which this stream prunes a candidate: decisions must survive
    "litelora": (LiteLoRAStrategy, dict(lambda_sparsity=0.05, selection_lr=0.02)),
    "per_task": (PerTaskLoRAStrategy, {}),
    "sequential": (SequentialLoRAStrategy, {}),
}


def _evaluator():
    return EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True),
        forgetting_metrics(experience=True, stream=True),
        bwt_metrics(experience=True, stream=True),
        loggers=[],
    )


def _strategy(kind="litelora", seed=1993, plugins=(), **overrides):
    RNGManager.set_random_seeds(seed)
    cls, method = STRATEGIES[kind]
    model = tiny_mlp()
    kwargs = lite_kwargs(evaluator=_evaluator(), train_epochs=2, plugins=list(plugins), **method)
    if cls is not LiteLoRAStrategy:
        kwargs.pop("selection_mb_size")
    kwargs.update(overrides)
    return cls(model=model, optimizer=sgd(model), **kwargs)


def _share(seed=1993):
    RNGManager.set_random_seeds(seed)
    model = tiny_mlp()
    return ShareStrategy(model=model, optimizer=sgd(model), rank=4, target_modules=MLP_TARGETS,
                         train_mb_size=32, train_epochs=2, eval_mb_size=512, evaluator=_evaluator())


def _train(strategy, benchmark, experiences):
    results = []
    for index in experiences:
        strategy.train(benchmark.train_stream[index])
        results.append(strategy.eval(benchmark.test_stream))
    return results


def _tensors(strategy):
    return {k: v.detach().clone() for k, v in strategy.model.state_dict().items() if torch.is_tensor(v)}


def _snapshot(strategy):
    """What a refused load must leave exactly as it was."""
    return {
        "model": _tensors(strategy),
        "adapters": list(getattr(strategy.model, "adapter_names", [])),
        "clock": dict(vars(strategy.clock)),
        "optimizer": [list(g["params"]) for g in strategy.optimizer.param_groups],
        "history": {k: (list(x), list(v)) for k, (x, v) in strategy.evaluator.all_metric_results.items()},
    }


def _same_snapshot(a, b):
    return (
        a["model"].keys() == b["model"].keys()
        and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        and a["adapters"] == b["adapters"] and a["clock"] == b["clock"] and a["history"] == b["history"]
        and all(len(x) == len(y) and all(p is q for p, q in zip(x, y)) for x, y in zip(a["optimizer"], b["optimizer"]))
    )


def _decisions(strategy):
    return [d for p in strategy.plugins if isinstance(p, PruneClosedCandidatePlugin) for d in p.decisions]


one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)


@pytest.fixture(scope="module")
def tiny_ci():
    return digits_benchmark(5)


@pytest.fixture(scope="module")
def saved(tiny_ci, tmp_path_factory):
    """A LiteLoRA run checkpointed after two experiences."""
    strategy = _strategy()
    _train(strategy, tiny_ci, [0, 1])
    path = tmp_path_factory.mktemp("saved") / "checkpoint.pt"
    save_checkpoint(strategy, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(STRATEGIES) + ["share"])
def test_a_resumed_strategy_continues_bitwise_like_the_uninterrupted_one(kind, tiny_ci, ti_benchmark, tmp_path):
    build = _share if kind == "share" else (lambda: _strategy(kind))
    benchmark = ti_benchmark if kind == "share" else tiny_ci
    path = tmp_path / "checkpoint.pt"

    original = build()
    _train(original, benchmark, [0, 1, 2])
    save_checkpoint(original, path)
    expected = _train(original, benchmark, [3])
    expected_state, expected_history = _tensors(original), dict(original.evaluator.all_metric_results)
    expected_decisions = _decisions(original)

    resumed = build()  # a fresh process would build the same way
    if hasattr(resumed, "resume"):
        assert resumed.resume(path) == 3
    else:  # any SupervisedTemplate: the functions
        assert load_checkpoint(resumed, path)["experiences_done"] == 3
    assert _train(resumed, benchmark, [3]) == expected
    state = _tensors(resumed)
    assert state.keys() == expected_state.keys()
    assert all(torch.equal(state[k], expected_state[k]) for k in state)
    assert dict(resumed.evaluator.all_metric_results) == expected_history
    assert _decisions(resumed) == expected_decisions
    if kind == "litelora":
        assert expected_decisions, "this configuration is meant to prune a candidate"


def test_the_file_holds_the_model_state_dict_for_other_tools(saved):
    payload = torch.load(saved, map_location="cpu", weights_only=True)
    fresh = LoRAClassifier(tiny_mlp(), rank=4, target_modules=MLP_TARGETS)
    fresh.load_state_dict(payload["model"])
    assert fresh.adapter_names == [n for n in ("adapter_0", "adapter_1") if n not in fresh.pruned_adapters]
    assert payload["format_version"] == checkpoint_module.FORMAT_VERSION
    assert payload["checksum"].startswith("sha256:")
    assert payload["extra"] == {} and payload["experiences_done"] == 2


@pytest.mark.parametrize("damage", ["flip", "truncate", "text"])
def test_a_damaged_file_is_refused_and_the_strategy_is_untouched(damage, saved, tmp_path):
    data = bytearray(saved.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) * 2 // 3]
    else:
        data = bytearray(b"not a checkpoint\n")
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(bytes(data))
    strategy = _strategy()
    before = _snapshot(strategy)
    with pytest.raises(CheckpointError, match="corrupted|truncated"):
        load_checkpoint(strategy, bad)
    assert _same_snapshot(before, _snapshot(strategy))


def _rewrite(path: Path, out: Path, change) -> Path:
    """A checkpoint edited after the fact, with a checksum made to match (a consistent lie)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    payload.pop("checksum")
    change(payload)
    payload["checksum"] = checkpoint_module._digest(payload)
    torch.save(payload, out)
    return out


def test_an_edited_file_without_a_new_checksum_is_refused(saved, tmp_path):
    payload = torch.load(saved, map_location="cpu", weights_only=True)
    payload["model"]["head.classifier.weight"] += 1.0
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match="checksum"):
        read_checkpoint(tmp_path / "edited.pt")


@pytest.mark.parametrize(
    "kind,overrides,field",
    [
        ("litelora", dict(rank=2), "model_settings"),
        ("litelora", dict(lambda_sparsity=0.5), "plugin_settings"),
        ("litelora", dict(train_mb_size=16), "sizes"),
        ("litelora", dict(target_modules=["features.0"]), "model_settings"),
        ("per_task", {}, "strategy"),
    ],
)
def test_another_configuration_is_refused_before_anything_changes(kind, overrides, field, saved):
    strategy = _strategy(kind, **overrides)
    before = _snapshot(strategy)
    with pytest.raises(CheckpointError, match=f"another configuration(.|\n)*{field}"):
        load_checkpoint(strategy, saved)
    assert _same_snapshot(before, _snapshot(strategy))


def test_the_fingerprint_is_the_strategy_config_and_a_changed_setting_is_named(saved):
    payload = torch.load(saved, map_location="cpu", weights_only=True)
    assert payload["fingerprint"]["config"] == {**dataclasses.asdict(_strategy().config), "target_modules": MLP_TARGETS}
    strategy = _strategy(refit_lr=0.5)
    with pytest.raises(CheckpointError, match=r"config.refit_lr: checkpoint has 0.01, this run has 0.5"):
        load_checkpoint(strategy, saved)


def test_a_checkpoint_written_before_the_config_entered_the_fingerprint_still_resumes(saved, tmp_path):
    older = _rewrite(saved, tmp_path / "checkpoint.pt", lambda payload: payload["fingerprint"].pop("config"))
    assert load_checkpoint(_strategy(), older)["experiences_done"] == 2
    with pytest.raises(CheckpointError, match="plugin_settings"):  # its plugin settings still decide
        load_checkpoint(_strategy(refit_lr=0.5), older)


def test_plugin_state_goes_through_checkpoint_state_and_the_older_attribute_form_still_loads(saved, tmp_path):
    strategy = _strategy()
    index = next(i for i, p in enumerate(strategy.plugins) if isinstance(p, PruneClosedCandidatePlugin))
    payload = torch.load(saved, map_location="cpu", weights_only=True)
    assert set(payload["plugins"][index]) == {"__custom__"}  # the plugin's own checkpoint_state()

    def older_form(payload):  # how files written before the protocol held the decisions
        payload["plugins"][index] = {"decisions": [("adapter_1", 2)]}

    load_checkpoint(strategy, _rewrite(saved, tmp_path / "checkpoint.pt", older_form))
    assert strategy.plugins[index].decisions == [("adapter_1", 2)]


def test_a_model_that_does_not_fit_is_refused_without_half_loading(saved, tmp_path):
    def shrink_head(payload):
        payload["model"]["head.classifier.weight"] = payload["model"]["head.classifier.weight"][:, :5]

    bad = _rewrite(saved, tmp_path / "checkpoint.pt", shrink_head)
    strategy = _strategy()
    _train(strategy, digits_benchmark(5), [0])  # a bank and an optimizer to keep intact
    before = _snapshot(strategy)
    with pytest.raises(CheckpointError, match="does not load"):
        load_checkpoint(strategy, bad)
    assert _same_snapshot(before, _snapshot(strategy))


def test_metric_state_may_only_name_classes_the_evaluator_uses(saved, tmp_path):
    def smuggle(payload):
        buffer = io.BytesIO()
        torch.save({"payload": argparse.Namespace(x=1)}, buffer)
        payload["evaluator"]["metric_states"][0] = torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)

    bad = _rewrite(saved, tmp_path / "checkpoint.pt", smuggle)
    strategy = _strategy()
    before = _snapshot(strategy)
    with pytest.raises(CheckpointError, match="argparse.Namespace"):
        load_checkpoint(strategy, bad)
    assert _same_snapshot(before, _snapshot(strategy))


def test_the_write_is_atomic_and_cleans_what_a_killed_write_left(saved, tmp_path):
    stale = tmp_path / ".checkpoint.pt.tmp-killed"
    stale.write_bytes(b"partial")
    strategy = _strategy()
    path = save_checkpoint(strategy, tmp_path / "checkpoint.pt", extra={"note": "fresh"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert read_checkpoint(path)["extra"] == {"note": "fresh"}
    with pytest.raises(ValueError, match="plain"):
        save_checkpoint(strategy, path, extra={"bad": object()})
    assert read_checkpoint(path)["extra"] == {"note": "fresh"}  # the good one is still there


def test_a_merged_model_is_not_checkpointed(tiny_ci, tmp_path):
    strategy = _strategy("per_task")
    _train(strategy, tiny_ci, [0])
    strategy.model.merge()
    with pytest.raises(ValueError, match="merged"):
        save_checkpoint(strategy, tmp_path / "checkpoint.pt")
    assert not (tmp_path / "checkpoint.pt").exists()


def test_only_the_main_process_writes(monkeypatch, tmp_path):
    monkeypatch.setattr(checkpoint_module, "DistributedHelper", types.SimpleNamespace(is_main_process=False))
    assert save_checkpoint(_strategy(), tmp_path / "checkpoint.pt") is None
    assert not (tmp_path / "checkpoint.pt").exists()


def test_the_plugin_writes_after_each_train_call(tiny_ci, tmp_path):
    path = tmp_path / "checkpoint.pt"
    strategy = _strategy("per_task", plugins=[CheckpointPlugin(path)])
    for index in range(2):
        strategy.train(tiny_ci.train_stream[index])
        assert read_checkpoint(path)["experiences_done"] == index + 1
    resumed = _strategy("per_task", plugins=[CheckpointPlugin(path)])
    assert resumed.resume(path) == 2
    assert resumed.model.adapter_names == strategy.model.adapter_names


def test_train_stream_resumes_only_the_same_stream_and_never_overwrites(tmp_path):
    benchmark = digits_benchmark(2)
    results = train_stream(_strategy("per_task"), benchmark, checkpoint_dir=tmp_path)
    assert len(results) == 2 and all("Top1_Acc_Stream/eval_phase/test_stream/Task000" in r for r in results)
    with pytest.raises(FileExistsError, match="resume=True"):
        train_stream(_strategy("per_task"), benchmark, checkpoint_dir=tmp_path)
    other_order = digits_benchmark(2, seed=7)
    with pytest.raises(CheckpointError, match="stream"):
        train_stream(_strategy("per_task"), other_order, checkpoint_dir=tmp_path, resume=True)
    finished = _strategy("per_task")
    assert train_stream(finished, benchmark, checkpoint_dir=tmp_path, resume=True) == results
    assert finished.clock.train_exp_counter == 2  # restored, nothing retrained
