"""``side="input"``: the same measures on the updates' row spaces (the span of each ``A``),
checked against full-size ``Delta W^T``; the default output side is untouched; bad sides refused."""

from types import SimpleNamespace

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from avalanche_litelora import AdapterRedundancyMetric, LoRAClassifier
from avalanche_litelora.analysis import analyse_model, analyse_state_dict, subspace_overlap
from avalanche_litelora.analysis.__main__ import main
from avalanche_litelora.analysis.redundancy import SliceFactors, analyse_bank
from builders import MLP_TARGETS, random_bank, random_vit_bank, tiny_mlp

D_OUT, D_IN = 10, 8


def _eye(dim, *indices):
    return torch.eye(dim, dtype=torch.float64)[:, list(indices)]


def test_sides_differ_where_only_a_or_only_b_is_shared():
    # adapters 0 and 1 read the same inputs (same A) and write orthogonal outputs (B);
    # adapters 0 and 2 write the same outputs and read orthogonal inputs
    a_shared, a_other = _eye(D_IN, 0, 1).T, _eye(D_IN, 4, 5).T
    b_shared, b_other = _eye(D_OUT, 0, 1), _eye(D_OUT, 6, 7)
    bank = {"layer": {
        "adapter_0": {"out": SliceFactors(a_shared, b_shared, 1.0, (0, D_OUT))},
        "adapter_1": {"out": SliceFactors(2.0 * a_shared, b_other, 1.0, (0, D_OUT))},
        "adapter_2": {"out": SliceFactors(a_other, -b_shared, 0.5, (0, D_OUT))},
    }}
    output, inputs = analyse_bank(bank), analyse_bank(bank, side="input")
    assert output.side == "output" and inputs.side == "input"
    assert float(output.model.overlap[0, 1]) == pytest.approx(0.0, abs=1e-12)
    assert float(output.model.overlap[0, 2]) == pytest.approx(1.0)
    assert float(inputs.model.overlap[0, 1]) == pytest.approx(1.0)
    assert float(inputs.model.overlap[0, 2]) == pytest.approx(0.0, abs=1e-12)
    assert float(inputs.model.captured[1]) == pytest.approx(1.0)
    assert float(inputs.model.captured[2]) == pytest.approx(0.0, abs=1e-12)  # in neither earlier A
    # the singular values are the same either way, so are the effective ranks
    assert inputs.model.rank99 == output.model.rank99 == 4


def _row_basis(matrix, width):
    """Orthonormal basis of the row space of a full-size update (the reference, dense)."""
    return torch.linalg.svd(matrix.double().T)[0][:, :width]


def test_input_side_matches_the_full_size_transposed_updates():
    model = random_vit_bank(3)
    report = analyse_model(model, side="input")
    name = model.lora_layer_names[1]
    layer = model.lora_layers()[name]
    full = [layer.get_delta_weight(a) for a in report.adapters]
    # the layer: q and v together read the span of both slices' A (rank 2 + 2)
    bases = [_row_basis(w, 4) for w in full]
    assert float(report.layers[name].overlap[0, 2]) == pytest.approx(subspace_overlap(bases[0], bases[2]), abs=1e-8)
    # captured: energy of Delta W_2^T inside the span of the earlier two's row spaces
    span = torch.linalg.qr(torch.cat(bases[:2], dim=1))[0]
    energy = float((full[2].double() @ span).pow(2).sum() / full[2].double().pow(2).sum())
    assert float(report.layers[name].captured[2]) == pytest.approx(energy, abs=1e-8)
    # one slice: its own rows of the update
    start, end = layer.out_slices["v"]
    q0, q1 = (_row_basis(w[start:end], 2) for w in full[:2])
    assert float(report.slices[f"{name}.v"].overlap[0, 1]) == pytest.approx(subspace_overlap(q0, q1), abs=1e-8)
    # the default is the output side, as before the option
    default = analyse_model(model)
    assert default.side == "output"
    assert torch.equal(default.model.overlap, analyse_model(model, side="output").model.overlap)
    assert not torch.allclose(default.model.overlap, report.model.overlap)


@pytest.mark.parametrize("bad", ["rows", "Input", None])
def test_a_bad_side_is_refused_with_the_choices(bad):
    model = random_vit_bank(3)
    for call in (lambda: analyse_model(model, side=bad),
                 lambda: analyse_state_dict(model.state_dict(), side=bad),
                 lambda: AdapterRedundancyMetric(side=bad)):
        with pytest.raises(ValueError, match="side must be 'output' .* or 'input'"):
            call()


def test_cli_input_side_prints_it_and_logs_beside_the_output_side(tmp_path, capsys):
    state = random_vit_bank(3).state_dict()
    path = tmp_path / "bank.pt"
    torch.save(state, path)
    tb = str(tmp_path / "tb")
    assert main([str(path), "--side", "input", "--tensorboard", tb]) == 0
    out = capsys.readouterr().out
    report = analyse_state_dict(state, side="input")
    assert "side: input" in out
    assert f"{report.model.mean_pairwise_overlap:.3f}" in next(l for l in out.splitlines() if l.startswith("model "))
    assert main([str(path), "--tensorboard", tb]) == 0
    events = EventAccumulator(tb, size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert {"Redundancy/input/overlap_heatmap", "Redundancy/overlap_heatmap"} <= set(events.Tags()["images"])
    assert events.Scalars("Redundancy/input/captured/adapter_2")[0].value == pytest.approx(
        float(report.model.captured[2]), rel=1e-5)
    assert events.Scalars("Redundancy/captured/adapter_2")[0].value == pytest.approx(
        float(analyse_state_dict(state).model.captured[2]), rel=1e-5)
    with pytest.raises(SystemExit):
        main([str(path), "--side", "rows"])
    assert "invalid choice: 'rows'" in capsys.readouterr().err


def test_the_metric_emits_the_input_side_under_its_own_tags():
    model = LoRAClassifier(tiny_mlp(), rank=2, target_modules=MLP_TARGETS)
    random_bank(model, 2)
    strategy = SimpleNamespace(model=model)
    values = {v.name: v.value for v in AdapterRedundancyMetric(side="input").after_training_exp(strategy)}
    expected = analyse_model(model, slices=False, side="input").model
    assert values["Redundancy/input/mean_overlap"] == pytest.approx(expected.mean_pairwise_overlap)
    assert values["Redundancy/input/captured/adapter_1"] == pytest.approx(float(expected.captured[1]))
    assert "Images/adapter_overlap/input" in values
    assert not any(tag.startswith("Redundancy/mean") for tag in values)
