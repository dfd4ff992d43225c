import math

import pytest
import torch

from avalanche_litelora import LoRAClassifier
from avalanche_litelora.analysis import (
    analyse_model,
    analyse_state_dict,
    bank_from_state_dict,
    captured_energy_fraction,
    energy_rank,
    low_rank_svd,
    subspace_overlap,
)
from avalanche_litelora.analysis.redundancy import SliceFactors, analyse_bank
from builders import random_vit_bank, tiny_vit

D_OUT, D_IN = 12, 9


def _e(*indices, dim=D_OUT):
    """Columns of the identity: an orthonormal basis made of chosen unit vectors."""
    return torch.eye(dim, dtype=torch.float64)[:, list(indices)]


def _a(rank, seed):
    return torch.randn(rank, D_IN, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_identical_spans_overlap_one_even_with_different_factors():
    b = torch.randn(D_OUT, 3, dtype=torch.float64)
    mix = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [1.0, 0.0, 1.0]], dtype=torch.float64)
    u1, _ = low_rank_svd(b, _a(3, 0))
    u2, _ = low_rank_svd(-5.0 * b @ mix, _a(3, 1))
    assert u1.shape == (D_OUT, 3)
    assert subspace_overlap(u1, u2) == pytest.approx(1.0, abs=1e-10)


def test_orthogonal_spans_overlap_zero():
    u1, _ = low_rank_svd(_e(0, 1), _a(2, 0))
    u2, _ = low_rank_svd(_e(2, 3), _a(2, 1))
    assert subspace_overlap(u1, u2) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("theta", [0.3, math.pi / 4, 1.2])
def test_known_rotation_gives_known_cosine(theta):
    # spans {e0, e1} and {e0, cos t e1 + sin t e2}: principal angles 0 and t
    rotated = torch.stack(
        [_e(0)[:, 0], math.cos(theta) * _e(1)[:, 0] + math.sin(theta) * _e(2)[:, 0]], dim=1
    )
    u1, _ = low_rank_svd(_e(0, 1), _a(2, 0))
    u2, _ = low_rank_svd(rotated, _a(2, 1))
    assert subspace_overlap(u1, u2) == pytest.approx((1 + math.cos(theta) ** 2) / 2, abs=1e-10)
    # rank one: the single angle's squared cosine
    v1, _ = low_rank_svd(_e(1), _a(1, 2))
    v2, _ = low_rank_svd(rotated[:, 1:], _a(1, 3))
    assert subspace_overlap(v1, v2) == pytest.approx(math.cos(theta) ** 2, abs=1e-10)


def test_projection_fraction_in_span_is_one_outside_zero_and_partial_known():
    span, _ = low_rank_svd(_e(0, 1, 2), _a(3, 0))
    inside_u, inside_s = low_rank_svd(_e(0) + 2 * _e(2), _a(1, 1))
    assert captured_energy_fraction(inside_u, inside_s, span) == pytest.approx(1.0, abs=1e-12)
    outside_u, outside_s = low_rank_svd(_e(5), _a(1, 2))
    assert captured_energy_fraction(outside_u, outside_s, span) == pytest.approx(0.0, abs=1e-12)
    tilted_u, tilted_s = low_rank_svd(0.6 * _e(0) + 0.8 * _e(7), _a(1, 3))
    assert captured_energy_fraction(tilted_u, tilted_s, span) == pytest.approx(0.36, abs=1e-12)


def test_energy_rank_counts_singular_values():
    assert energy_rank(torch.tensor([3.0, 1.0]), 0.90) == 1  # 9 / 10 of the energy
    assert energy_rank(torch.tensor([3.0, 1.0]), 0.99) == 2
    assert energy_rank(torch.tensor([1.0, 1.0, 1.0, 1.0]), 0.90) == 4
    assert energy_rank(torch.zeros(3), 0.9) == 0
    with pytest.raises(ValueError):
        energy_rank(torch.ones(2), 1.5)


def _bank(*column_bases):
    """One layer, one slice, one adapter per given column basis; orthonormal A rows (equal singular values)."""
    a = torch.eye(D_IN, dtype=torch.float64)
    return {
        "layer": {
            f"adapter_{i}": {"out": SliceFactors(a[: b.shape[1]], b, 1.0, (0, D_OUT))}
            for i, b in enumerate(column_bases)
        }
    }


def test_constructed_bank_effective_rank_and_captured():
    # three orthogonal rank-2 adapters: 6 directions; a fourth repeating the first adds none
    report = analyse_bank(_bank(_e(0, 1), _e(2, 3), _e(4, 5), _e(0, 1)))
    model = report.model
    assert len(model.singular_values) == 8
    # energies (each adapter normalised): 1, 1 (e0, e1 twice), then 0.5 x 4 of a total of 4
    assert model.rank99 == 6 and model.rank90 == 6
    assert model.singular_values.pow(2).tolist()[:6] == pytest.approx([1, 1, 0.5, 0.5, 0.5, 0.5])
    assert model.captured[0].isnan()
    assert model.captured[1:3].tolist() == pytest.approx([0.0, 0.0], abs=1e-12)
    assert float(model.captured[3]) == pytest.approx(1.0)
    assert float(model.overlap[0, 3]) == pytest.approx(1.0)
    assert float(model.overlap[0, 1]) == pytest.approx(0.0, abs=1e-12)
    # same span throughout: the bank spans 2 directions however many adapters it holds
    same = analyse_bank(_bank(_e(0, 1), _e(0, 1) * 3, _e(1, 0)))
    assert same.model.rank99 == 2 and same.model.mean_pairwise_overlap == pytest.approx(1.0)


def test_all_zero_adapter_is_nan_not_a_crash():
    report = analyse_bank(_bank(_e(0, 1), torch.zeros(D_OUT, 2, dtype=torch.float64)))
    assert report.model.overlap[0, 1].isnan() and report.model.captured[1].isnan()
    assert report.model.rank99 == 2


def test_state_dict_matches_the_model_and_the_full_delta_weights():
    model = random_vit_bank(3)
    from_model = analyse_model(model)
    from_sd = analyse_state_dict(model.state_dict())
    assert from_model.adapters == ["adapter_0", "adapter_1", "adapter_2"]
    assert torch.allclose(from_model.model.overlap, from_sd.model.overlap)
    assert set(from_sd.layers) == set(model.lora_layer_names)
    assert set(from_sd.slices) == {f"{n}.{k}" for n in model.lora_layer_names for k in ("q", "v")}
    # the q slice of one layer, from the full-size delta weights the layer computes
    layer_name = model.lora_layer_names[1]
    layer = model.lora_layers()[layer_name]
    start, end = layer.out_slices["q"]
    bases = []
    for name in from_sd.adapters:
        full = layer.get_delta_weight(name).double()[start:end]
        u, s, _ = torch.linalg.svd(full)
        bases.append(u[:, : int((s > s[0] * 1e-6).sum())])
    expected = subspace_overlap(bases[0], bases[2])
    assert float(from_sd.slices[f"{layer_name}.q"].overlap[0, 2]) == pytest.approx(expected, abs=1e-8)
    # the layer unit is the layer's real update: q and v rows together
    full0 = layer.get_delta_weight("adapter_0").double()
    full1 = layer.get_delta_weight("adapter_1").double()
    u0 = torch.linalg.svd(full0)[0][:, :4]
    u1 = torch.linalg.svd(full1)[0][:, :4]
    assert float(from_sd.layers[layer_name].overlap[0, 1]) == pytest.approx(
        subspace_overlap(u0, u1), abs=1e-8
    )


def test_freezing_changes_nothing_the_analysis_sees():
    torch.manual_seed(1)
    model = LoRAClassifier(tiny_vit(), rank=2)
    name = model.open_candidate()
    for layer in model.lora_layers().values():
        for key in layer.adapters[name].B:
            torch.nn.init.normal_(layer.adapters[name].B[key])
            layer.adapters[name].magnitude[key].data.fill_(0.3)
    before = bank_from_state_dict(model.state_dict())
    model.freeze(name)  # folds the norms into the magnitude, update unchanged
    after = bank_from_state_dict(model.state_dict())
    for layer in before:
        f0, f1 = before[layer][name]["q"], after[layer][name]["q"]
        assert f1.scale == pytest.approx(f0.scale, rel=1e-5)


def test_adapters_sort_as_numbers_past_ten():
    model = random_vit_bank(12, seed=2)
    sd = model.state_dict()
    shuffled = dict(sorted(sd.items(), key=lambda kv: kv[0]))  # adapter_10 before adapter_2
    report = analyse_state_dict(shuffled, slices=False)
    assert report.adapters == [f"adapter_{i}" for i in range(12)]
    assert report.model.overlap.shape == (12, 12)


def test_state_dict_without_adapters_is_refused():
    with pytest.raises(ValueError, match="no LoRA adapters"):
        analyse_state_dict(tiny_vit().state_dict())
