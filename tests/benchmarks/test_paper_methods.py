"""InfLoRA and O-LoRA on the ``--paper`` path: their published settings, the published numbers
beside ours in the report, and both methods end to end on the tiny synthetic path."""

from __future__ import annotations

import copy
import json
import math

import pytest

from avalanche_litelora.inflora import InfLoRAConfig
from avalanche_litelora.olora import OLoRAConfig
from benchmarks import paper
from benchmarks.harness import paper_config
from benchmarks.harness.paper_methods import CodaCosineLRPlugin
from benchmarks.harness.paper_report import departures, paper_report

SMALL_VIT = "test_vit.r160_in1k"


def test_inflora_holds_the_official_configs_values():
    c100, inr = (paper_config.load_config(n)["methods"]["inflora"] for n in ("cifar100", "imagenet_r"))
    # configs/cifar100_inflora.json and configs/mimg20_inflora.json of liangyanshuo/InfLoRA
    assert (c100["optimizer"], c100["lr"], c100["betas"], c100["weight_decay"]) == ("adam", 5e-4, [0.9, 0.999], 0.0)
    assert (c100["train_epochs"], c100["train_mb_size"], c100["rank"], c100["threshold_start"],
            c100["threshold_end"]) == (20, 128, 10, 0.95, 1.0)
    assert (inr["train_epochs"], inr["threshold_start"], inr["qkv_parts"]) == (50, 0.98, ["k", "v"])
    config = InfLoRAConfig(**paper_config.strategy_fields("inflora", inr))  # validates
    assert config.qkv_parts == ("k", "v") and config.rank == 10


def test_olora_holds_the_official_method_values_and_a_marked_recipe():
    for name in ("cifar100", "imagenet_r"):
        olora = paper_config.load_config(name)["methods"]["olora"]
        config = OLoRAConfig(**paper_config.strategy_fields("olora", olora))
        assert (config.lambda_orth, config.lambda_l2, config.rank, config.scale) == (0.5, 0.0, 8, 4.0)
    with open(paper_config.CONFIG_FILE) as f:
        comments = json.load(f)["comments"]
    assert "DEVIATION" in comments["olora_deviations"] and "DEVIATION" in comments["inflora_deviations"]
    assert "none published" in comments["reference_olora"]


def test_published_numbers_are_stored_with_their_source():
    inr, c100 = (paper_config.load_config(n)["reference"] for n in ("imagenet_r", "cifar100"))
    assert c100["inflora"]["anytime"] == [91.70, 0.32] and c100["inflora"]["final"] == [86.51, 0.73]
    assert inr["inflora"]["anytime"] == [77.28, 0.45] and "20 tasks" in inr["inflora"]["source"]
    assert "anytime" not in inr["olora"] and inr["olora"]["source"].startswith("none published")


def test_a_bad_method_setting_fails_when_the_file_is_read(monkeypatch):
    raw = paper_config._raw()
    broken = copy.deepcopy(raw)
    broken["methods"]["inflora"]["benchmarks"]["imagenet_r"]["threshold_start"] = 1.5
    monkeypatch.setattr(paper_config, "_raw", lambda: broken)
    with pytest.raises(ValueError, match="inflora's settings.*threshold_start"):
        paper_config.load_config("imagenet_r")
    broken = copy.deepcopy(raw)
    broken["methods"]["olora"]["settings"]["lambda_orthogonal"] = 0.5  # a misspelt key
    monkeypatch.setattr(paper_config, "_raw", lambda: broken)
    with pytest.raises(ValueError, match="olora's settings"):
        paper_config.load_config("cifar100")


def test_a_method_without_published_settings_is_refused_before_anything_runs():
    with pytest.raises(SystemExit, match="no published settings for them on cub200"):
        paper.settings(paper.parse_args(["--paper", "cub200", "--strategies", "litelora", "inflora"]))


def test_the_command_line_budget_binds_the_methods_and_is_reported():
    cfg = paper.settings(paper.parse_args(["--paper", "imagenet_r", "--tiny", "--strategies", "inflora"]))
    assert (cfg["methods"]["inflora"]["train_epochs"], cfg["methods"]["inflora"]["train_mb_size"]) == (1, 4)
    reasons = departures(cfg, synthetic=False, random_init=False)
    assert "InfLoRA: 1 epoch(s) instead of 50" in reasons and not any("instead of 20" in r for r in reasons)
    full = paper.settings(paper.parse_args(["--paper", "imagenet_r", "--strategies", "inflora", "olora"]))
    assert departures(full, synthetic=False, random_init=False) == []


def test_the_schedule_is_infloras_cosine():
    factors = [CodaCosineLRPlugin.factor(e, 50) for e in range(50)]
    assert factors[0] == 1.0 and factors[-1] == pytest.approx(math.cos(0.495 * math.pi))
    assert all(a > b for a, b in zip(factors, factors[1:])) and CodaCosineLRPlugin.factor(0, 1) == 1.0


def _row(strategy, seed, anytime, final):
    return {"stream": "imagenet_r", "strategy": strategy, "seed": seed, "avg_anytime_acc_weighted": anytime,
            "final_acc_weighted": final, "forgetting": 0.1, "forgetting_reference": 0.1, "active_adapters": 20,
            "experiences": 20, "device": "cuda", "amp": "fp32", "world_size": 1, "train_images_per_s": 1.0,
            "train_step_ms": 1.0, "peak_mem_mb": 1.0, "infer_merged_sps": 1.0, "train_time_s": 1.0,
            "scenario": "class-il", "train_per_experience": "all", "backbone": "b", "lambda_sparsity": "",
            "avg_anytime_acc": anytime, "final_acc": final, "just_trained_acc": 0.9, "bwt": -0.1,
            "adapter_params": 1, "infer_unmerged_sps": 1.0}


def test_the_report_prints_the_published_numbers_beside_ours():
    cfg = paper.settings(paper.parse_args(["--paper", "imagenet_r", "--strategies", "litelora", "inflora", "olora"]))
    rows = [_row("litelora", 1993, 0.8, 0.7), _row("inflora", 1993, 0.78, 0.70), _row("inflora", 1995, 0.76, 0.72),
            _row("olora", 1993, 0.7, 0.6)]
    text = paper_report(rows, cfg, {}, synthetic=False, random_init=False)
    assert "| LiteLoRA | 1993 | 80.00 | 82.83 |" in text  # the README's table, as before
    assert "| InfLoRA | 1993, 1995 | 77.00 ± 1.41 | 77.28 ± 0.45 | 71.00 ± 1.41 | 71.01 ± 0.45 |" in text
    assert "| O-LoRA | 1993 | 70.00 | none published | 60.00 | none published |" in text
    assert "InfLoRA: Adam lr 0.0005" in text and "threshold 0.98 → 1 over 20 tasks" in text


@pytest.mark.slow
def test_inflora_and_olora_on_the_tiny_synthetic_path(tmp_path):
    argv = ["--paper", "imagenet_r", "--synthetic", "--random-init", "--tiny", "--seeds", "1993",
            "--pretrained", SMALL_VIT, "--strategies", "inflora", "olora", "--throughput-samples", "2",
            "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--workers", "0"]
    assert paper.main(argv) == 0
    rows = json.loads((tmp_path / "out" / "rows.json").read_text())
    assert [(r["strategy"], r["experiences"], r["active_adapters"]) for r in rows] == [("inflora", 2, 2),
                                                                                       ("olora", 2, 2)]
    assert all(0.0 <= r["final_acc_weighted"] <= 1.0 and r["infer_merged_sps"] > 0 for r in rows)
    report = (tmp_path / "out" / "results.md").read_text()
    assert "| 77.28 ± 0.45 |" in report and "| none published |" in report
    assert (tmp_path / "out" / "runs" / "inflora_seed1993" / "checkpoint" / "checkpoint.pt").is_file()
