"""The bank scaling benchmark end to end on a tiny ViT: its files, columns and bank sizes."""

import csv
import json
import math

import pytest
import timm
import torch

from benchmarks.studies import bank_scaling


def tiny_vit():
    return timm.models.VisionTransformer(img_size=16, patch_size=8, in_chans=1, embed_dim=16, depth=2,
                                         num_heads=2, mlp_ratio=2.0, num_classes=10)


@pytest.fixture
def tiny_backbone(monkeypatch):
    monkeypatch.setitem(bank_scaling.BACKBONES, "tiny", (tiny_vit, (1, 16, 16), 4, 6, 1))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_banks_have_the_requested_size(tiny_backbone):
    backbone = tiny_vit()
    model = bank_scaling.lora_bank(backbone, 3)
    assert len(model.adapter_names) == 3 and model.candidate == model.adapter_names[-1]
    share = bank_scaling.share_bank(backbone, 3)
    assert share.tasks == [0, 1, 2]
    # every model reads the backbone's own tensors: fifty banks cost one backbone
    weights = {id(layer.base.weight) for layer in model.lora_layers().values()}
    assert id(backbone.blocks[0].attn.qkv.weight) in weights


def test_tiny_run_writes_every_column(tiny_backbone, tmp_path):
    figure = tmp_path / "fig.png"
    bank_scaling.main(["--backbones", "tiny", "--sizes", "1", "3", "--rounds", "1", "--no-memory",
                       "--out", str(tmp_path), "--figure", str(figure)])
    with open(tmp_path / "bank_scaling.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["backbone"], r["n"]) for r in rows] == [("tiny", "1"), ("tiny", "3")]
    for row in rows:
        assert list(row) == bank_scaling.COLUMNS
        for column in bank_scaling.COLUMNS[2:]:
            value = float(row[column])
            assert math.isfinite(value) and value > 0, (column, value)
    saved = json.loads((tmp_path / "bank_scaling.json").read_text())
    assert saved["env"]["rounds"] == {"tiny": 1} and len(saved["env"]["load_avg_after"]) == 3
    assert "| tiny | 3 |" in (tmp_path / "bank_scaling.md").read_text()
    assert figure.stat().st_size > 0


def test_memory_probe_counts_the_adapters(tiny_backbone):
    small = bank_scaling.memory_probe("tiny", "lora", 1, "cpu")
    large = bank_scaling.memory_probe("tiny", "lora", 4, "cpu")
    assert large["adapter_mb"] == pytest.approx(4 * small["adapter_mb"], rel=0.05)
    assert large["peak_mb"] > 0


def test_bad_sizes_are_refused():
    with pytest.raises(SystemExit):
        bank_scaling.main(["--sizes", "0"])
