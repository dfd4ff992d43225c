import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from avalanche_litelora.analysis import analyse_state_dict
from avalanche_litelora.analysis.__main__ import main
from builders import random_vit_bank, tiny_vit


@pytest.fixture(scope="module")
def trained_bank():
    return random_vit_bank(3).state_dict()


def test_cli_on_checkpoint_prints_table_writes_pngs_and_tensorboard(trained_bank, tmp_path, capsys):
    path = tmp_path / "ckpt.pt"
    torch.save({"model": trained_bank, "clock": {"train_exp_counter": 3}}, path)
    code = main([str(path), "--out", str(tmp_path / "png"), "--tensorboard", str(tmp_path / "tb")])
    assert code == 0
    out = capsys.readouterr().out
    report = analyse_state_dict(trained_bank)
    assert "adapter_0, adapter_1, adapter_2" in out
    first_row = next(line for line in out.splitlines() if line.startswith("model "))
    assert f"{report.model.mean_pairwise_overlap:.3f}" in first_row
    assert "blocks.0.attn.qkv.q" in out and "blocks.1.attn.qkv.v" in out
    for name in ("overlap_model.png", "overlap_layers.png", "captured.png"):
        with Image.open(tmp_path / "png" / name) as image:
            assert image.format == "PNG" and image.size[0] > 100
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert "Redundancy/overlap_heatmap" in events.Tags()["images"]
    mean_overlap = events.Scalars("Redundancy/mean_overlap")
    assert [e.step for e in mean_overlap] == [2]  # the newest adapter's index
    assert mean_overlap[0].value == pytest.approx(report.model.mean_pairwise_overlap, rel=1e-5)
    assert events.Scalars("Redundancy/captured/adapter_2")[0].value == pytest.approx(
        float(report.model.captured[2]), rel=1e-5
    )


def test_cli_on_a_bare_state_dict_writes_no_files_unasked(trained_bank, tmp_path, capsys, monkeypatch):
    path = tmp_path / "bare.pt"
    torch.save(trained_bank, path)
    monkeypatch.chdir(tmp_path)
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "rank90" in out and "model overlap" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare.pt"]


def test_cli_refuses_missing_and_adapterless_files(tmp_path, capsys):
    assert main([str(tmp_path / "nope.pt")]) == 2
    plain = tmp_path / "plain.pt"
    torch.save(tiny_vit().state_dict(), plain)
    assert main([str(plain)]) == 2
    assert "no LoRA adapters" in capsys.readouterr().err
