"""Do the package's own mechanics change the results against the reference code's? Three seeds.

    python -m benchmarks.studies.mechanics_study [--stream redundant_domain_immediate] [--seeds 1993 1995 2000]
                                         [--out results/mechanics] [--resume]

One question, on a stream where adapters carry the task (class-token read-out): each
mechanic of the reference code (one magnitude per adapter, a gate sample per gated call, the
rescale at the task boundary) against the package's former choice, one at a time, for
LiteLoRA and (where it applies) per-task LoRA, with the head-only control beside them. Every
run uses the harness's budget and LiteLoRA's default lambda rule. Writes ``mechanics.json``
and ``mechanics.md`` under ``--out``; ``--resume`` keeps finished runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from benchmarks.harness import ground_truth
from benchmarks.harness.runner import RunSettings, run_one
from benchmarks.harness.streams import build_stream, get_stream

#: The reference code's mechanics; each variant below changes one of them.
REFERENCE = {"magnitude_scope": "per_adapter", "boundary": "rescale"}
REFERENCE_GATE = {"gate_sampling": "per_call"}

#: (label, strategy, overrides). The first LiteLoRA and per-task rows are the reference's.
VARIANTS: List[Tuple[str, str, Dict[str, Any]]] = [
    ("head-only control", "head_only", {}),
    ("per-task LoRA, reference mechanics", "per_task_lora", dict(REFERENCE)),
    ("per-task LoRA, magnitudes per layer", "per_task_lora", dict(REFERENCE, magnitude_scope="per_layer")),
    ("per-task LoRA, boundary preserved", "per_task_lora", dict(REFERENCE, boundary="preserve")),
    ("LiteLoRA, reference mechanics", "litelora", dict(REFERENCE, **REFERENCE_GATE)),
    ("LiteLoRA, magnitudes per layer", "litelora", dict(REFERENCE, **REFERENCE_GATE, magnitude_scope="per_layer")),
    ("LiteLoRA, boundary preserved", "litelora", dict(REFERENCE, **REFERENCE_GATE, boundary="preserve")),
    ("LiteLoRA, one gate sample per forward pass", "litelora", dict(REFERENCE, gate_sampling="per_forward")),
    ("LiteLoRA, all three package choices", "litelora",
     dict(magnitude_scope="per_layer", boundary="preserve", gate_sampling="per_forward")),
    ("per-task LoRA, magnitudes per layer, boundary preserved", "per_task_lora",
     dict(REFERENCE, magnitude_scope="per_layer", boundary="preserve")),
    ("LiteLoRA, magnitudes per layer, boundary preserved", "litelora",
     dict(REFERENCE, **REFERENCE_GATE, magnitude_scope="per_layer", boundary="preserve")),
]


def _mean_std(values: List[float], fmt: str = "{:.3f}") -> str:
    values = [float(v) for v in values]
    if not values:
        return "–"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{fmt.format(statistics.fmean(values))} ± {fmt.format(spread)}"


def _decisions(row: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    if row["strategy"] != "litelora" or not row.get("ground_truth"):
        return None
    labels = [ground_truth.ExperienceRedundancy(**lab) for lab in row["ground_truth"]]
    return ground_truth.counts(ground_truth.decisions(labels, row.get("pruned_names", []),
                                                      matrix=row["accuracy_matrix"]))


def _ratio(counted: List[Dict[str, Any]], part: str, whole: str) -> str:
    if not counted or any(c[whole] == "" for c in counted):
        return "–"
    return f"{sum(c[part] for c in counted)}/{sum(c[whole] for c in counted)}"


def markdown(rows: Dict[str, List[Dict[str, Any]]], stream: str, seeds: List[int]) -> str:
    lines = [f"Stream `{stream}`, seeds {', '.join(map(str, seeds))} (mean ± std over seeds; decisions "
             "summed over seeds).", "",
             "| variant | avg anytime acc | final acc | just-trained acc | active adapters | novel kept | "
             "repeats pruned | novel for the bank kept | redundant for the bank pruned |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, group in rows.items():
        counted = [c for c in (_decisions(r) for r in group) if c is not None]
        lines.append(
            f"| {label} | {_mean_std([r['avg_anytime_acc'] for r in group])} | "
            f"{_mean_std([r['final_acc'] for r in group])} | {_mean_std([r['just_trained_acc'] for r in group])} | "
            f"{_mean_std([r['active_adapters'] for r in group], '{:.1f}')} | "
            f"{_ratio(counted, 'novel_kept', 'novel_total')} | {_ratio(counted, 'redundant_pruned', 'redundant_total')} | "
            f"{_ratio(counted, 'bank_novel_kept', 'bank_novel_total')} | "
            f"{_ratio(counted, 'bank_redundant_pruned', 'bank_redundant_total')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stream", default="redundant_domain_immediate")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1993, 1995, 2000])
    parser.add_argument("--variants", nargs="+", type=int, help="indices into VARIANTS (default: all)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-per-experience", type=int, default=1000)
    parser.add_argument("--test-per-experience", type=int, default=300)
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--out", default="docs/benchmarks/studies/mechanics_study")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    spec = get_stream(args.stream)
    settings = RunSettings(epochs=args.epochs, train_per_experience=args.train_per_experience)
    chosen = [VARIANTS[i] for i in (args.variants or range(len(VARIANTS)))]
    out = Path(args.out)
    rows: Dict[str, List[Dict[str, Any]]] = {label: [] for label, _, _ in chosen}
    for seed in args.seeds:
        benchmark = build_stream(spec, seed, args.data_root, args.train_per_experience, args.test_per_experience)
        for label, strategy, overrides in chosen:
            run_dir = out / f"seed{seed}" / f"variant{VARIANTS.index((label, strategy, overrides))}"
            row = run_one(spec, benchmark, strategy, seed, settings, run_dir, overrides=overrides or None,
                          bare_sps=0.0, resume=args.resume)
            rows[label].append(row)
            print(f"[seed {seed}] {label}: anytime {row['avg_anytime_acc']:.3f}, final {row['final_acc']:.3f}, "
                  f"adapters {row['active_adapters']}", flush=True)
    text = markdown(rows, args.stream, args.seeds)
    (out / "mechanics.md").write_text(text)
    (out / "mechanics.json").write_text(json.dumps(
        {label: [{k: r[k] for k in ("seed", "avg_anytime_acc", "final_acc", "just_trained_acc",
                                      "active_adapters", "pruned_names")} for r in group]
         for label, group in rows.items()}, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
