"""OLoRAStrategy: its penalty against an element-wise oracle, the overlap it drives down,
frozen earlier adapters, ViT and text backbones, resume."""

from __future__ import annotations

import pytest
import torch
from avalanche.training.determinism.rng_manager import RNGManager

from avalanche_litelora import LoRAClassifier
from avalanche_litelora.olora import OLoRAConfig, OLoRAStrategy, l2_loss, orthogonality_loss, overlap
from avalanche_litelora.training.checkpoint import save_checkpoint
from avalanche_litelora.training.compatibility import IncompatiblePluginError
from builders import MLP_TARGETS, digits_benchmark, quiet_evaluator, sgd, single_thread, tiny_mlp, tiny_vit

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)


def _strategy(seed=1993, model=None, **overrides):
    RNGManager.set_random_seeds(seed)
    model = model if model is not None else tiny_mlp()
    kwargs = dict(rank=4, target_modules=MLP_TARGETS, train_mb_size=32, train_epochs=3, eval_mb_size=512,
                  evaluator=quiet_evaluator())
    kwargs.update(overrides)
    return OLoRAStrategy(model=model, optimizer=sgd(model), **kwargs)


def test_the_penalties_match_an_element_wise_oracle():
    g = torch.Generator().manual_seed(0)
    old = [torch.randn(3, 7, generator=g), torch.randn(2, 7, generator=g)]
    new = torch.randn(4, 7, generator=g)
    rows = [row for a in old for row in a]
    oracle = sum(abs(float(r @ n)) for r in rows for n in new)
    assert float(orthogonality_loss(old, new)) == pytest.approx(oracle, rel=1e-5)
    assert float(orthogonality_loss([], new)) == 0.0
    assert float(l2_loss([new, old[0]])) == pytest.approx(float(new.norm() + old[0].norm()), rel=1e-6)
    q, _ = torch.linalg.qr(torch.randn(7, 7, generator=g))
    assert overlap([q[:3]], q[3:6]) < 1e-6 and overlap([q[:3]], 5 * q[:3]) == pytest.approx(3 ** 0.5 / 3)


def _two_experiences(lambda_orth):
    bench = digits_benchmark(5)
    strategy = _strategy(lambda_orth=lambda_orth)
    strategy.train(bench.train_stream[0])
    first = {n: {k: (a.A[k].detach().clone(), a.B[k].detach().clone(), a.magnitude[k].detach().clone())
                 for k in a.A}
             for n, layer in strategy.adapter_model.lora_layers().items() for a in [layer.adapters["adapter_0"]]}
    strategy.train(bench.train_stream[1])
    return strategy, first


@pytest.fixture(scope="module")
def with_and_without():
    return _two_experiences(0.5), _two_experiences(0.0)


def test_the_penalty_drives_the_overlap_with_earlier_adapters_down(with_and_without):
    (on, _), (off, _) = with_and_without
    overlap_on, overlap_off = on.overlap("adapter_1"), off.overlap("adapter_1")
    for key in overlap_on:
        # same seed, same data: the new A starts identical, only the penalty differs
        assert overlap_on[key] < 0.6 * overlap_off[key], (key, overlap_on, overlap_off)


def test_earlier_adapters_are_unchanged_by_training(with_and_without):
    (strategy, first), _ = with_and_without
    for name, layer in strategy.adapter_model.lora_layers().items():
        adapter = layer.adapters["adapter_0"]
        for key in adapter.A:
            a, b, _ = first[name][key]
            assert torch.equal(adapter.A[key], a) and torch.equal(adapter.B[key], b)
            assert not any(p.requires_grad for p in (adapter.A[key], adapter.B[key], adapter.magnitude[key]))
            # its update is still the plain B A it trained as
            assert torch.allclose(layer.get_delta_weight("adapter_0")[:, :], b @ a, atol=1e-6)


def test_lora_alpha_scales_every_update_as_peft_does():
    bench = digits_benchmark(5)
    strategy = _strategy(lora_alpha=8.0, train_epochs=1)
    strategy.train(bench.train_stream[0])
    for layer in strategy.adapter_model.lora_layers().values():
        adapter = layer.adapters["adapter_0"]
        expected = 2.0 * adapter.B["out"].detach() @ adapter.A["out"].detach()  # 8 / rank 4
        assert torch.allclose(layer.get_delta_weight("adapter_0"), expected, atol=1e-6)


def test_it_runs_on_a_vit():
    bench = digits_benchmark(5)
    model = tiny_vit()
    strategy = _strategy(model=model, rank=2, target_modules=("qkv",), train_epochs=1, train_mb_size=64)
    for exp in list(bench.train_stream)[:2]:
        strategy.train(exp)
    strategy.eval(bench.test_stream[:2])
    assert set(strategy.overlap()) == {f"{n}.{k}" for n in strategy.adapter_model.lora_layer_names for k in ("q", "v")}


def test_it_runs_on_a_text_classifier():
    transformers = pytest.importorskip("transformers")
    from avalanche.benchmarks.scenarios.deprecated.generators import nc_benchmark
    from torch.utils.data import TensorDataset

    from avalanche_litelora.backbones import create_backbone
    from avalanche_litelora.backbones.text import BERT_QUERY_VALUE, pack_tokens

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=32, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0)
    backbone = create_backbone("hf_text", config=config)
    g = torch.Generator().manual_seed(0)

    def split(n):  # class c's sentences use tokens 10c+1 .. 10c+9
        labels = torch.arange(4).repeat_interleave(n)
        ids = 10 * labels[:, None] + torch.randint(1, 10, (len(labels), 12), generator=g)
        ds = TensorDataset(pack_tokens(ids, torch.ones_like(ids)), labels)
        ds.targets = labels.tolist()
        return ds

    bench = nc_benchmark(split(24), split(12), n_experiences=2, task_labels=False, seed=1993)
    strategy = _strategy(model=backbone, rank=2, target_modules=BERT_QUERY_VALUE, train_mb_size=16)
    for exp in bench.train_stream:
        strategy.train(exp)
    results = strategy.eval(bench.test_stream)
    assert results["Top1_Acc_Stream/eval_phase/test_stream/Task000"] > 0.4  # 4 classes
    assert len(strategy.overlap("adapter_1")) == 4  # query and value of 2 layers


def test_a_resumed_run_continues_bitwise_like_the_uninterrupted_one(tmp_path):
    bench = digits_benchmark(5)
    path = tmp_path / "checkpoint.pt"
    original = _strategy(train_epochs=2, lambda_l2=0.01)
    original.train(bench.train_stream[0])
    save_checkpoint(original, path)
    original.train(bench.train_stream[1])
    expected = original.eval(bench.test_stream)
    resumed = _strategy(seed=7, train_epochs=2, lambda_l2=0.01)
    assert resumed.resume(path) == 1
    resumed.train(bench.train_stream[1])
    assert resumed.eval(bench.test_stream) == expected
    for (k, v), (k2, v2) in zip(original.model.state_dict().items(), resumed.model.state_dict().items()):
        assert k == k2 and (not torch.is_tensor(v) or torch.equal(v, v2)), k


def test_combinations_that_cannot_work_are_refused_with_the_reason():
    rescaling = LoRAClassifier(tiny_mlp(), rank=4, target_modules=MLP_TARGETS, magnitude_scope="per_adapter",
                               boundary="preserve")
    with pytest.raises(IncompatiblePluginError, match="magnitude_scope='per_layer'"):
        OLoRAStrategy(model=rescaling, optimizer=sgd(rescaling))
    with pytest.raises(ValueError, match="lambda_orth"):
        OLoRAConfig(lambda_orth=-1.0)
    assert OLoRAConfig().lambda_orth == 0.5 and OLoRAConfig().lambda_l2 == 0.0  # the official defaults
