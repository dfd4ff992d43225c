import pytest
import torch
from avalanche.models import MultiTaskModule
from avalanche.models.utils import avalanche_model_adaptation
from torch import nn

from avalanche_litelora import LoRAClassifier
from avalanche_litelora.adapters.pending_head import PendingHead
from builders import MLP_TARGETS, digits_benchmark, tiny_mlp, tiny_vit


def _trained_model(task_incremental=False):
    """A classifier with two adapters that have non-zero updates and grown heads."""
    bm = digits_benchmark(5, task_labels=task_incremental)
    model = LoRAClassifier(tiny_vit(), rank=4, task_incremental=task_incremental)
    for exp in list(bm.train_stream)[:2]:
        avalanche_model_adaptation(model, exp)
        name = model.open_candidate()
        with torch.no_grad():
            for layer in model.lora_layers().values():
                for b in layer.adapters[name].B.values():
                    b.normal_()
        model.freeze(name)
    model.eval()
    return model, bm


def test_strips_timm_head_and_builds_growing_head():
    model = LoRAClassifier(tiny_vit(), rank=4)
    assert isinstance(model.backbone.head, nn.Identity)
    assert model.lora_layer_names == ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head"}


def test_open_prune_freeze_lifecycle_and_readouts():
    model = LoRAClassifier(tiny_mlp(), rank=4, target_modules=MLP_TARGETS)
    assert model.adapter_parameter_count() == 0
    a = model.open_candidate()
    per_adapter = model.adapter_parameter_count()
    # A (4x64) + B (64x4) + magnitude, in two layers, plus one logit
    assert per_adapter == 2 * (4 * 64 + 64 * 4 + 1) + 1
    with pytest.raises(RuntimeError):
        model.open_candidate()  # one candidate at a time
    model.freeze(a)
    b = model.open_candidate()
    assert model.adapter_parameter_count() == 2 * per_adapter
    model.prune(b)
    assert model.adapter_names == [a] and model.pruned_adapters == [b]
    assert model.adapter_parameter_count() == per_adapter
    assert not any(f".{b}." in k for k in model.state_dict())
    assert model.active_adapters == [a] and model.gate_logits() == {a: 0.5}
    assert set(model.magnitudes()[a]) == {"features.0.out", "features.3.0.out"}


@pytest.mark.parametrize("task_incremental", [False, True])
def test_merged_and_unmerged_outputs_agree(task_incremental):
    model, bm = _trained_model(task_incremental)
    x, _, t = next(iter(torch.utils.data.DataLoader(bm.test_stream[0].dataset, batch_size=32)))
    weights = {n: l.base.weight.detach().clone() for n, l in model.lora_layers().items()}
    unmerged = model(x, t)
    model.merge()
    torch.testing.assert_close(model(x, t), unmerged, rtol=1e-5, atol=1e-5)
    model.unmerge()
    for n, layer in model.lora_layers().items():
        assert torch.equal(layer.base.weight, weights[n])
    torch.testing.assert_close(model(x, t), unmerged, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("task_incremental", [False, True])
def test_state_dict_round_trip_into_a_fresh_model(task_incremental, tmp_path):
    model, bm = _trained_model(task_incremental)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    fresh = LoRAClassifier(tiny_vit(), rank=4, task_incremental=task_incremental)
    fresh.load_state_dict(torch.load(tmp_path / "model.pt"))
    fresh.eval()
    x, _, t = next(iter(torch.utils.data.DataLoader(bm.test_stream[1].dataset, batch_size=64)))
    assert torch.equal(fresh(x, t), model(x, t))
    assert fresh.adapter_names == model.adapter_names
    assert fresh.gate_logits() == model.gate_logits()
    assert not any(p.requires_grad for n, p in fresh.named_parameters() if ".adapters." in n)


def test_multi_head_without_task_labels_answers_for_every_known_task():
    """What Avalanche's MultiTaskModule returns (LwF distils every head from it)."""
    model, bm = _trained_model(task_incremental=True)
    x = torch.zeros(2, 1, 8, 8)
    out = model(x)
    assert isinstance(model, MultiTaskModule) and sorted(out) == [0, 1]
    for task, logits in out.items():  # a labelled call pads every task to the widest head
        routed = model(x, torch.full((2,), task))
        assert torch.equal(logits, routed[:, : logits.shape[1]])


def test_class_incremental_model_is_a_plain_module_that_ignores_task_labels():
    model, bm = _trained_model(task_incremental=False)
    x = torch.zeros(2, 1, 8, 8)
    assert not isinstance(model, MultiTaskModule) and isinstance(model, LoRAClassifier)
    assert torch.equal(model(x), model(x, torch.tensor([3, 4])))


def test_bad_construction_leaves_backbone_untouched():
    vit = tiny_vit()
    with pytest.raises(ValueError, match="rank"):
        LoRAClassifier(vit, rank=0)
    with pytest.raises(ValueError, match="init_logit"):
        LoRAClassifier(vit, rank=2, init_logit=float("nan"))
    with pytest.raises(ValueError, match="tau"):
        LoRAClassifier(vit, rank=2, tau=-1.0)
    assert isinstance(vit.head, nn.Linear)
    assert all(p.requires_grad for p in vit.parameters())
    # a backbone without a recognised classifier is a feature extractor, not an error: its
    # head waits for the first experience (tests/training/test_defaults.py)
    headless = LoRAClassifier(nn.Sequential(nn.Flatten(), nn.Linear(64, 8)), rank=2, target_modules=["1"])
    assert isinstance(headless.head, PendingHead)


def test_mixed_task_labels_in_one_minibatch_route_to_their_heads():
    model, bm = _trained_model(task_incremental=True)
    loader = lambda i: torch.utils.data.DataLoader(bm.test_stream[i].dataset, batch_size=5)
    (x0, _, t0), (x1, _, t1) = next(iter(loader(0))), next(iter(loader(1)))
    mixed = model(torch.cat([x0, x1]), torch.cat([t0, t1]))
    alone0, alone1 = model(x0, t0), model(x1, t1)
    torch.testing.assert_close(mixed[:5, : alone0.shape[1]], alone0)
    torch.testing.assert_close(mixed[5:, : alone1.shape[1]], alone1)


class _BatchNormNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU())
        self.classifier = nn.Linear(16, 4)

    def forward(self, x):
        return self.classifier(self.features(x))


def test_backbone_batchnorm_statistics_stay_frozen_in_training():
    backbone = _BatchNormNet()
    model = LoRAClassifier(backbone, rank=2, target_modules=["features.1"])
    norm = backbone.features[2]
    stats = norm.running_mean.clone()
    model.train()
    model(torch.randn(8, 1, 8, 8) * 5 + 3)
    assert not norm.training and model.head.training
    assert torch.equal(norm.running_mean, stats)
