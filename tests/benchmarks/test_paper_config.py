"""``python -m benchmarks.run --paper NAME``: the configuration, its overrides, the run end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from avalanche_litelora.data.paper import reference_class_order, synthetic
from avalanche_litelora.inflora import InfLoRAConfig
from benchmarks import paper, run
from benchmarks.harness import paper_config, runner
from benchmarks.harness.paper_report import departures

#: timm's own test ViT (0.3 M parameters, 160 pixels): the whole path in seconds on a CPU.
SMALL_VIT = "test_vit.r160_in1k"


def test_the_config_holds_the_reference_configs_values():
    inr, c100, ina, cub = (paper.load_config(n) for n in ("imagenet_r", "cifar100", "imagenet_a", "cub200"))
    assert (inr["rank"], inr["target_modules"], inr["train_epochs"], inr["train_mb_size"]) == (10, ["qkv"], 20, 128)
    assert (inr["lr"], inr["momentum"], inr["weight_decay"]) == (0.01, 0.9, 2e-4)
    assert (inr["selection_epochs"], inr["selection_mb_size"], inr["selection_lr"]) == (1, 16, 0.05)
    assert (inr["lambda_sparsity"], inr["init_logit"], inr["seeds"]) == (0.02, 0.5, [1993, 1995, 2000])
    assert (inr["n_experiences"], c100["n_experiences"], ina["n_experiences"], cub["n_experiences"]) == (20, 10, 20, 10)
    assert (c100["lr"], c100["lambda_sparsity"], c100["selection_mb_size"]) == (0.008, 0.035, 128)
    assert (ina["lambda_sparsity"], cub["selection_mb_size"], cub["selection_lr"]) == (0.014, 2, 0.01)
    assert c100["reference"]["litelora"] == {"anytime": [91.81, 92.64, 91.41], "forgetting": [4.66, 5.14, 6.09],
                                             "adapters": [5, 8, 7]}
    assert c100["reference"]["sdlora"]["anytime"] == [91.71, 92.54, 91.27]
    assert inr["reference"]["litelora"]["anytime"] == [82.83, 81.64, 81.71]
    assert inr["reference"]["litelora"]["adapters"] == [6, 7, 6]
    assert inr["reference"]["sdlora"]["anytime"] == [82.41, 81.55, 81.27]
    with open(paper_config.CONFIG_FILE) as f:
        comments = json.load(f)["comments"]
    # normalisation, the head refit, the selection optimizer's weight decay
    assert sum("DEVIATION" in text for text in comments.values()) >= 3
    # the reference's mechanics, fp32 by default, and its optimizer groups
    assert (inr["magnitude_scope"], inr["boundary"], inr["gate_sampling"], inr["lambda_rule"]) == (
        "per_adapter", "rescale", "per_call", "absolute")
    assert inr["magnitude_lr"] == 0.008 and paper.parse_args(["--paper", "imagenet_r"]).amp == "off"


def test_run_hands_paper_commands_to_the_paper_module(monkeypatch):
    seen = []
    monkeypatch.setattr(paper, "main", lambda argv: seen.append(argv) or 7)
    assert run.main(["--paper", "cifar100", "--seeds", "1993"]) == 7
    assert run.main(["--seeds", "1995", "--paper=imagenet_a"]) == 7
    assert seen == [["--paper", "cifar100", "--seeds", "1993"], ["--seeds", "1995", "--paper=imagenet_a"]]


def test_tiny_and_explicit_overrides():
    cfg = paper.settings(paper.parse_args(["--paper", "imagenet_r", "--tiny", "--epochs", "3"]))
    assert (cfg["experiences"], cfg["train_per_experience"], cfg["train_epochs"], cfg["train_mb_size"]) == (2, 8, 3, 4)
    assert departures(cfg, synthetic=False, random_init=False)  # not the paper's run, and said so
    full = paper.settings(paper.parse_args(["--paper", "imagenet_r"]))
    assert departures(full, synthetic=False, random_init=False) == []
    assert paper.settings(paper.parse_args(["--paper", "cifar100", "--experiences", "50"]))["experiences"] == 10
    for bad in (["--epochs", "0"], ["--batch-size", "-1"], ["--refit-steps", "-2"]):
        with pytest.raises(SystemExit):
            paper.parse_args(["--paper", "imagenet_r", *bad])
    with pytest.raises(SystemExit, match="no such model"):
        paper.settings(paper.parse_args(["--paper", "imagenet_r", "--pretrained", "vit_base_patch16_224.nope"]))


def test_weighted_anytime_accuracy_weighs_experiences_by_their_test_samples():
    matrix = [[1.0, 0.0], [0.5, 1.0]]
    assert runner.weighted_anytime(matrix, [10, 30]) == pytest.approx((1.0 + (5 + 30) / 40) / 2)
    assert runner.weighted_anytime(matrix, [1, 1]) == pytest.approx((1.0 + 0.75) / 2)
    assert runner.weighted_accuracies(matrix, [10, 30])[-1] == pytest.approx((5 + 30) / 40)  # the final one
    assert runner.weighted_anytime([[0.5, 1.0]], [10, 30]) == pytest.approx((5 + 30) / 40)  # joint: one row


def test_missing_weights_are_refused_with_where_to_get_them(monkeypatch):
    monkeypatch.setattr(paper, "cached_weights", lambda name: None)
    args = paper.parse_args(["--paper", "imagenet_r"])
    with pytest.raises(SystemExit, match="(?s)--checkpoint.*huggingface.co/timm/vit_base_patch16_224.augreg_in21k"):
        paper.load_backbone(paper.settings(args), args)


@pytest.mark.parametrize("name, expected", [
    ("cifar100", r"(?s)CIFAR-100: no file.*cifar-100-python.*--data-root DIR is dataset_root, --allow-download"),
    ("domainnet", r"(?s)DomainNet: no folder.*M3SDA.*never downloads.*--data-root DIR is dataset_root; --paper imagenet_r --synthetic"),
])
def test_a_missing_dataset_ends_the_command_with_the_message_not_a_traceback(tmp_path, name, expected):
    cfg = paper.settings(paper.parse_args(["--paper", name, "--tiny"]))
    with pytest.raises(SystemExit, match=expected):
        paper.build_benchmark(cfg, 1993, str(tmp_path), download=False)


def test_benchmark_follows_the_reference_class_order_and_the_slice(tmp_path):
    synthetic.make_imagenet_variant(tmp_path, "imagenet-r", images_per_class=5)
    args = paper.parse_args(["--paper", "imagenet_r", "--experiences", "3", "--train-per-experience", "7"])
    bm = paper.build_benchmark(paper.settings(args), 1995, str(tmp_path), download=False)
    order = reference_class_order(200, 1995)
    assert len(bm.train_stream) == len(bm.test_stream) == 3
    expected = [sorted(order[i:i + 10]) for i in (0, 10, 20)]
    assert [sorted(e.classes_in_this_experience) for e in bm.test_stream] == expected
    # a 7-sample cut of an experience holds only some of its classes
    assert all(set(e.classes_in_this_experience) <= set(c) for e, c in zip(bm.train_stream, expected))
    assert [len(e.dataset) for e in bm.train_stream] == [7, 7, 7]
    assert [len(e.dataset) for e in bm.test_stream] == [10, 10, 10]
    x, *_ = bm.test_stream[0].dataset[0]
    assert tuple(x.shape) == (3, 224, 224)


def _tiny_argv(root, *extra):
    return ["--paper", "imagenet_r", "--synthetic", "--random-init", "--tiny", "--seeds", "1993",
            "--data-root", str(root / "data"), "--out", str(root / "out"), "--workers", "0", *extra]


@pytest.mark.slow
def test_paper_path_end_to_end_on_a_small_vit_then_resume(tmp_path, monkeypatch, capsys):
    argv = _tiny_argv(tmp_path, "--pretrained", SMALL_VIT, "--strategies", "litelora", "sdlora",
                      "--throughput-samples", "2")
    assert run.main(argv) == 0
    rows = json.loads((tmp_path / "out" / "rows.json").read_text())
    assert [(r["strategy"], r["experiences"], r["epochs"]) for r in rows] == [("litelora", 2, 1), ("sdlora", 2, 1)]
    assert rows[1]["active_adapters"] == 2 and 1 <= rows[0]["active_adapters"] <= 2
    assert all(0.0 <= r["avg_anytime_acc_weighted"] <= 1.0 and r["train_images_per_s"] > 0 for r in rows)
    report = (tmp_path / "out" / "results.md").read_text()
    assert "| LiteLoRA | 1993 |" in report and "| 82.83 |" in report and "| 82.41 |" in report
    assert "Not the paper's run" in report and "synthetic images" in report
    assert (tmp_path / "out" / "runs" / "litelora_seed1993" / "checkpoint" / "checkpoint.pt").is_file()
    assert "img/s" in capsys.readouterr().out

    # --resume keeps finished runs: nothing trains again
    monkeypatch.setattr(runner, "train_stream", lambda *a, **k: pytest.fail("trained a finished run again"))
    assert run.main(argv + ["--resume"]) == 0
    assert json.loads((tmp_path / "out" / "rows.json").read_text())[0]["accuracy_matrix"] == rows[0]["accuracy_matrix"]


@pytest.mark.slow
def test_paper_path_on_a_random_vit_b16(tmp_path):
    """The paper's backbone itself (ViT-B/16, 86 M parameters) for two experiences of two steps."""
    argv = _tiny_argv(tmp_path, "--strategies", "litelora", "--train-per-experience", "4", "--test-per-experience",
                      "2", "--batch-size", "2", "--selection-batch-size", "1", "--eval-batch-size", "4",
                      "--throughput-samples", "2")
    assert run.main(argv) == 0
    (row,) = json.loads((tmp_path / "out" / "rows.json").read_text())
    # per adapter: 12 blocks x (q, v) x (A 10x768 + B 768x10 + a frozen layer magnitude), one
    # gate logit and the reference's one trained magnitude
    assert row["experiences"] == 2 and row["adapter_params"] == row["active_adapters"] * (24 * (2 * 7680 + 1) + 2)


@pytest.mark.slow
def test_paper_path_under_torchrun_then_resume(tmp_path):
    """Two processes (gloo on the CPU; NCCL takes the same path on GPUs): the global batch is split,
    rank 0 alone writes, and every rank resumes from rank 0's checkpoints."""
    repo = Path(__file__).resolve().parents[2]
    argv = _tiny_argv(tmp_path, "--pretrained", SMALL_VIT, "--device", "cpu", "--strategies", "litelora")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "benchmarks.run", *argv]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    (row,) = json.loads((tmp_path / "out" / "rows.json").read_text())
    assert (row["world_size"], row["experiences"]) == (2, 2) and "at 2 per process" in proc.stdout
    (tmp_path / "out" / "runs" / "litelora_seed1993" / "row.json").unlink()  # as if killed after the stream
    proc = subprocess.run(cmd + ["--resume"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    (resumed,) = json.loads((tmp_path / "out" / "rows.json").read_text())
    assert resumed["accuracy_matrix"] == row["accuracy_matrix"]


def test_a_weights_file_loads_through_timm_local_and_loses_its_head(tmp_path):
    import timm
    import torch
    from safetensors.torch import save_file

    source = timm.create_model(SMALL_VIT.split(".")[0], pretrained=False)  # with its 1000-class head
    save_file(source.state_dict(), str(tmp_path / "model.safetensors"))
    args = paper.parse_args(["--paper", "imagenet_r", "--pretrained", SMALL_VIT,
                             "--checkpoint", str(tmp_path / "model.safetensors")])
    backbone, where = paper.load_backbone(paper.settings(args), args)
    assert str(tmp_path) in where and backbone.num_classes == 0
    x = torch.randn(1, 3, 160, 160)
    source.reset_classifier(0)
    assert torch.equal(backbone.eval()(x), source.eval()(x))  # the file's weights, not timm's init
