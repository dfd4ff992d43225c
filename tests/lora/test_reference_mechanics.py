"""The reference code's mechanics, as settings: one magnitude per adapter, a gate sampled at
every gated call, and the task-boundary rescale."""

import pytest
import torch
from torch import nn

from avalanche_litelora import LoRAClassifier
from avalanche_litelora.lora.phases import Phase
from builders import tiny_vit


def _trained_bank(n_adapters: int, **kwargs) -> LoRAClassifier:
    """A bank of ``n_adapters`` finished adapters (random non-zero B) and one open candidate."""
    torch.manual_seed(0)
    model = LoRAClassifier(tiny_vit(), rank=4, feature_dim=32, **kwargs)
    for i in range(n_adapters + 1):
        name = model.open_candidate()
        model.magnitude_phase(train_past_magnitudes=True)
        with torch.no_grad():
            for layer in model.lora_layers().values():
                for b in layer.adapters[name].B.values():
                    b.normal_()
        if i < n_adapters:
            model.freeze(name)
            model.end_experience()
    return model


def _updates(model):
    """Every layer's summed update on a fixed input, with the model's current gates."""
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model.features(x)


def test_one_magnitude_per_adapter_scales_every_layer_and_slice():
    model = _trained_bank(1, magnitude_scope="per_adapter")
    assert list(model.shared_magnitudes) == ["adapter_0", "adapter_1"]
    model.set_phase(Phase.TRAIN)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "shared_magnitudes.adapter_0" in trainable and "shared_magnitudes.adapter_1" in trainable
    assert not any(".magnitude." in n for n in trainable)  # no per-layer freedom
    model.eval()
    base = model.magnitudes()["adapter_0"]
    with torch.no_grad():
        model.shared_magnitudes["adapter_0"].fill_(3.0)
    scaled = model.magnitudes()["adapter_0"]
    assert len(scaled) == 2 * 2  # two blocks, q and v
    assert all(scaled[k] == pytest.approx(3.0 * base[k]) for k in base)
    # the forward pass sees it: doubling the shared magnitude moves the output
    before = _updates(model)
    with torch.no_grad():
        model.shared_magnitudes["adapter_0"].fill_(6.0)
    assert not torch.allclose(before, _updates(model))


def test_a_per_call_gate_draws_one_sample_per_gated_call_and_the_l1_term_is_their_mean():
    model = _trained_bank(1, magnitude_scope="per_adapter")
    model.set_phase(Phase.SELECTION)
    model.gate.sampling = "per_call"
    model.gate.selecting = True
    with torch.no_grad():
        model.gate.logits["adapter_1"].fill_(0.0)  # sampled gate open half the time
    model.train()
    drawn = []
    torch.manual_seed(3)
    for _ in range(5):
        model.features(torch.randn(2, 1, 8, 8))
        value = model.gate.last_candidate_value
        drawn.append(value)
    # 2 blocks x (q, v) = 4 independent hard samples per pass: their mean is a multiple of 1/4
    assert all(torch.is_tensor(v) and v.requires_grad for v in drawn)
    means = [float(v) for v in drawn]
    assert all(abs(m * 4 - round(m * 4)) < 1e-6 for m in means)
    assert any(0.0 < m < 1.0 for m in means)  # open in some layers, closed in others
    drawn[0].backward()
    assert model.gate.logits["adapter_1"].grad is not None  # the straight-through gradient


def test_per_forward_sampling_opens_or_closes_the_candidate_everywhere():
    model = _trained_bank(1)
    model.set_phase(Phase.SELECTION)
    model.gate.selecting = True
    with torch.no_grad():
        model.gate.logits["adapter_1"].fill_(0.0)
    model.train()
    torch.manual_seed(3)
    means = []
    for _ in range(8):
        model.features(torch.randn(2, 1, 8, 8))
        means.append(float(model.gate.last_candidate_value))
    assert set(means) <= {0.0, 1.0} and len(set(means)) == 2


@pytest.mark.parametrize("boundary", ["rescale", "preserve"])
def test_the_boundary_rescales_a_finished_adapter_only_when_asked(boundary):
    model = _trained_bank(0, boundary=boundary)  # one open candidate with trained B
    model.eval()
    layer = next(iter(model.lora_layers().values()))
    adapter = layer.adapters["adapter_0"]
    norms = {k: float(adapter.B[k].norm() * adapter.A[k].norm()) for k in adapter.A}
    before = layer.get_delta_weight("adapter_0").clone()
    model.freeze("adapter_0")
    model.end_experience()
    # the evaluation after the experience sees the adapter as it trained, either way
    torch.testing.assert_close(layer.get_delta_weight("adapter_0"), before)
    assert model.is_frozen("adapter_0")
    model.open_candidate()  # the next experience starts
    after = layer.get_delta_weight("adapter_0")
    if boundary == "preserve":
        torch.testing.assert_close(after, before)
    else:  # the reference's reload: the same magnitude on a normalised direction
        for key, (start, end) in layer.out_slices.items():
            torch.testing.assert_close(after[start:end], before[start:end] / norms[key])


def test_under_rescale_the_first_magnitude_does_not_train_in_the_first_experience():
    model = LoRAClassifier(tiny_vit(), rank=4, feature_dim=32, boundary="rescale",
                           magnitude_scope="per_adapter")
    model.open_candidate()
    model.magnitude_phase(train_past_magnitudes=True)
    assert not model.shared_magnitudes["adapter_0"].requires_grad
    model.freeze("adapter_0")
    model.end_experience()
    model.open_candidate()
    model.magnitude_phase(train_past_magnitudes=True)
    assert model.shared_magnitudes["adapter_0"].requires_grad  # alpha_0 trains from task 1 on
    assert model.shared_magnitudes["adapter_1"].requires_grad


def test_a_fresh_model_takes_the_magnitude_scope_its_state_dict_was_saved_with():
    model = _trained_bank(2, magnitude_scope="per_adapter")
    with torch.no_grad():
        model.shared_magnitudes["adapter_1"].fill_(0.5)
    model.eval()
    older = _trained_bank(2, magnitude_scope="per_layer")  # as every bank before the setting
    older.eval()
    for saved in (model, older):
        for scope in ("per_adapter", "per_layer"):
            fresh = LoRAClassifier(tiny_vit(), rank=4, feature_dim=32, magnitude_scope=scope)
            fresh.load_state_dict(saved.state_dict())
            fresh.eval()
            assert fresh.magnitude_scope == saved.magnitude_scope
            assert set(fresh.state_dict()) == set(saved.state_dict())
            torch.testing.assert_close(_updates(fresh), _updates(saved))
    with pytest.raises(ValueError, match="load it into a fresh model"):
        _trained_bank(1, magnitude_scope="per_layer").load_state_dict(model.state_dict())
