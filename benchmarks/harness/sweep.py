"""LiteLoRA's lambda, picked on a validation split of the training data (never the test stream)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from benchmarks.harness.runner import RunSettings, run_one
from benchmarks.harness.streams import StreamSpec, build_stream

#: How far below per-task LoRA's validation accuracy a sparser lambda may fall.
TOLERANCE = 0.01


def choose_lambda(sweep_rows: Sequence[Dict[str, Any]], reference: Dict[str, Any]) -> float:
    """The sparsest lambda within :data:`TOLERANCE` of per-task LoRA, else the most accurate one."""
    floor = reference["avg_anytime_acc"] - TOLERANCE
    good = [r for r in sweep_rows if r["avg_anytime_acc"] >= floor]
    if good:
        return max(good, key=lambda r: (-r["active_adapters"], r["lambda_sparsity"]))["lambda_sparsity"]
    return max(sweep_rows, key=lambda r: r["avg_anytime_acc"])["lambda_sparsity"]


def lambda_sweep(
    spec: StreamSpec,
    seed: int,
    settings: RunSettings,
    lambdas: Sequence[float],
    validation_fraction: float,
    data_root: str,
    test_per_experience: Optional[int],
    out_dir: Optional[Path],
    resume: bool = False,
) -> Tuple[float, List[Dict[str, Any]], Dict[str, Any]]:
    """Run per-task LoRA and LiteLoRA at every lambda on the validation stream; pick one."""
    benchmark = build_stream(
        spec, seed, data_root, settings.train_per_experience, test_per_experience,
        validation_fraction=validation_fraction,
    )
    common = dict(eval_stream="valid", bare_sps=0.0, resume=resume)
    reference = run_one(spec, benchmark, "per_task_lora", seed, settings,
                        out_dir / "per_task_lora" if out_dir else None, **common)
    rows = [  # the swept value as a number (the row's own column also names the rule)
        dict(run_one(spec, benchmark, "litelora", seed, settings,
                     out_dir / f"litelora_lambda{lam:g}" if out_dir else None,
                     overrides={"lambda_sparsity": lam}, **common), lambda_sparsity=lam)
        for lam in lambdas
    ]
    return choose_lambda(rows, reference), rows, reference
