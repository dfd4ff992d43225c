"""InfLoRAStrategy end to end on tiny digits streams: its defining property, resume, refusals."""

from __future__ import annotations

import pytest
import torch
from avalanche.training.determinism.rng_manager import RNGManager

from avalanche_litelora import LoRAClassifier
from avalanche_litelora.inflora import InfLoRAConfig, InfLoRAStrategy, old_space
from avalanche_litelora.training.checkpoint import save_checkpoint
from avalanche_litelora.training.compatibility import IncompatiblePluginError
from avalanche_litelora.training.loop import train_stream
from builders import MLP_TARGETS, digits_benchmark, quiet_evaluator, sgd, single_thread, tiny_mlp, tiny_vit

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)

#: ||Delta W_t M_old|| / ||Delta W_t|| must stay below this: A_t is designed in float64
#: orthogonal to M_old and stored in float32, so the ratio is float32 rounding (~1e-7).
INTERFERENCE_TOLERANCE = 1e-5


def _strategy(task_incremental=False, seed=1993, **overrides):
    RNGManager.set_random_seeds(seed)
    model = tiny_mlp()
    kwargs = dict(rank=4, target_modules=MLP_TARGETS, train_mb_size=32, train_epochs=2, eval_mb_size=512,
                  evaluator=quiet_evaluator(), task_incremental=task_incremental)
    kwargs.update(overrides)
    return InfLoRAStrategy(model=model, optimizer=sgd(model), **kwargs)


@pytest.fixture(scope="module")
def ci_run():
    """A class-incremental run of three experiences, with the memory before each one."""
    bench = digits_benchmark(5)
    strategy = _strategy()
    memories, adapters, accuracies = [], [], []
    for exp in list(bench.train_stream)[:3]:
        memories.append({n: old_space(m).clone() for n, m in strategy.subspace_memory.memory.items()})
        strategy.train(exp)
        adapters.append({n: {k: (a.A[k].detach().clone(), a.B[k].detach().clone()) for k in a.A}
                         for n, layer in strategy.adapter_model.lora_layers().items() for a in [layer.adapters[f"adapter_{len(adapters)}"]]})
        results = strategy.eval(bench.test_stream[: len(adapters)])
        accuracies.append(results["Top1_Acc_Stream/eval_phase/test_stream/Task000"])
    return strategy, memories, adapters, accuracies


def test_a_new_adapter_leaves_the_stored_input_subspace_of_earlier_tasks_untouched(ci_run):
    strategy, memories, _, _ = ci_run
    for t in (1, 2):
        for name, layer in strategy.adapter_model.lora_layers().items():
            delta = layer.get_delta_weight(f"adapter_{t}").double()
            assert delta.norm() > 0, "the adapter trained"
            ratio = float((delta @ memories[t][name]).norm() / delta.norm())
            assert ratio < INTERFERENCE_TOLERANCE, (t, name, ratio)


def test_the_designed_factor_is_frozen_and_only_b_trained(ci_run):
    strategy, _, adapters, _ = ci_run
    for t, saved in enumerate(adapters):
        for name, layer in strategy.adapter_model.lora_layers().items():
            adapter = layer.adapters[f"adapter_{t}"]
            for key in adapter.A:
                a = adapter.A[key].detach().double()
                # InfLoRA's designed A: orthonormal rows over sqrt(3); training would break that
                assert torch.allclose(a @ a.T, torch.eye(a.shape[0], dtype=torch.float64) / 3, atol=1e-5)
                assert not adapter.A[key].requires_grad and not adapter.B[key].requires_grad
                # finished adapters never change again
                assert torch.equal(adapter.A[key], saved[name][key][0])
                assert torch.equal(adapter.B[key], saved[name][key][1])


def test_the_memory_grows_with_each_task_under_the_threshold_schedule(ci_run):
    strategy, memories, _, _ = ci_run
    memory = strategy.subspace_memory
    assert memory.tasks_done == 3
    assert memory.thresholds == pytest.approx([0.95, 0.96, 0.97])  # 5 experiences, 0.95 -> 1.0
    dims = [{n: m.shape[1] for n, m in before.items()} for before in memories[1:]] + [strategy.subspace_dimensions()]
    for name in MLP_TARGETS:
        sizes = [d[name] for d in dims]
        assert sizes == sorted(sizes) and sizes[0] >= 1, sizes
    # each stored basis is orthonormal
    for m in strategy.subspace_memory.memory.values():
        assert torch.allclose(m.basis.T @ m.basis, torch.eye(m.basis.shape[1], dtype=torch.float64), atol=1e-10)


def test_class_incremental_training_learns_beyond_chance(ci_run):
    *_, accuracies = ci_run
    assert accuracies[-1] > 0.3  # three experiences of two classes: chance is 1/6


def test_task_incremental_training_end_to_end():
    bench = digits_benchmark(5, task_labels=True)
    strategy = _strategy(task_incremental=True)
    for exp in list(bench.train_stream)[:2]:
        strategy.train(exp)
    results = strategy.eval(bench.test_stream[:2])
    accuracy = [v for k, v in results.items() if k.startswith("Top1_Acc_Stream")]
    assert accuracy and min(accuracy) > 0.7  # two classes per task: chance is 1/2
    assert strategy.adapter_model.adapter_names == ["adapter_0", "adapter_1"]


def test_a_vit_gets_its_adapters_on_k_and_v_as_the_official_code():
    RNGManager.set_random_seeds(0)
    bench = digits_benchmark(5)
    model = tiny_vit()
    strategy = InfLoRAStrategy(model=model, optimizer=sgd(model), rank=2, train_mb_size=64, train_epochs=1,
                               eval_mb_size=512, evaluator=quiet_evaluator())
    strategy.train(bench.train_stream[0])
    for layer in strategy.adapter_model.lora_layers().values():
        assert set(layer.out_slices) == {"k", "v"}
        assert layer.out_slices["k"] == (layer.in_features, 2 * layer.in_features)
        assert torch.equal(layer.get_delta_weight("adapter_0")[: layer.in_features], torch.zeros(layer.in_features, layer.in_features))


def test_a_resumed_run_continues_bitwise_like_the_uninterrupted_one(tmp_path):
    bench = digits_benchmark(5)
    path = tmp_path / "checkpoint.pt"
    original = _strategy()
    for exp in list(bench.train_stream)[:2]:
        original.train(exp)
    save_checkpoint(original, path)
    original.train(bench.train_stream[2])
    expected = original.eval(bench.test_stream)

    resumed = _strategy(seed=7)  # other seeds: everything must come from the file
    assert resumed.resume(path) == 2
    assert resumed.subspace_memory.tasks_done == 2
    resumed.train(bench.train_stream[2])
    assert resumed.eval(bench.test_stream) == expected
    for (k, v), (k2, v2) in zip(original.model.state_dict().items(), resumed.model.state_dict().items()):
        assert k == k2 and (not torch.is_tensor(v) or torch.equal(v, v2)), k
    for name, m in original.subspace_memory.memory.items():
        again = resumed.subspace_memory.memory[name]
        assert m.kind == again.kind and torch.equal(m.basis, again.basis)


def test_train_stream_checkpoints_and_resumes(tmp_path):
    bench = digits_benchmark(2)
    first = train_stream(_strategy(), bench, checkpoint_dir=tmp_path, progress=False)
    again = train_stream(_strategy(), bench, checkpoint_dir=tmp_path, resume=True, progress=False)
    assert again == first


def test_combinations_that_cannot_work_are_refused_with_the_reason():
    backbone = tiny_mlp()
    rescaling = LoRAClassifier(backbone, rank=4, target_modules=MLP_TARGETS, boundary="rescale")
    with pytest.raises(IncompatiblePluginError, match="boundary='preserve'"):
        InfLoRAStrategy(model=rescaling, optimizer=sgd(rescaling))
    holding = LoRAClassifier(tiny_mlp(), rank=4, target_modules=MLP_TARGETS, boundary="preserve")
    holding.open_candidate()
    with pytest.raises(IncompatiblePluginError, match="already holds adapters"):
        InfLoRAStrategy(model=holding, optimizer=sgd(holding))
    with pytest.raises(ValueError, match="threshold_end"):
        InfLoRAConfig(threshold_start=0.99, threshold_end=0.9)
    with pytest.raises(ValueError, match="qkv_parts"):
        InfLoRAConfig(qkv_parts=("k", "x"))
