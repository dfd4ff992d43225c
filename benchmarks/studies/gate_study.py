"""Why does the gate keep (or drop) a repeat? LiteLoRA's variants on a ground-truth stream's validation split.

    python -m benchmarks.studies.gate_study [--stream redundant_domain_short] [--epochs 5] [--out results/gate_study]

Every variant is LiteLoRA as published, changed in one setting: lambda, the gate noise
(the reference code's Gumbel sample against the binary-concrete logistic one), the length of
the selection phase, and whether past magnitudes re-train (SD-LoRA; off measures bank drift).
All runs train on the training part of the stream and are scored on its held-out validation
part, never on the test stream, so the harness's choices can be made here. Per variant:
validation anytime accuracy, adapters kept, the decisions against the ground truth (repeats
and near-repeats apart), each candidate's logit at the end of its selection phase, and the
drift of each repeat's source domain before the repeat arrives. Writes ``gate_study.json``
and ``gate_study.md``; ``--resume`` keeps finished variants.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any, Dict, List

from avalanche_litelora.data.redundancy_streams import ExperienceRedundancy
from benchmarks.harness.ground_truth import decisions, labels_of
from benchmarks.harness.runner import RunSettings, run_one
from benchmarks.harness.streams import build_stream, get_stream

#: name -> LiteLoRA overrides. The first is the harness's setting; each other changes one thing.
VARIANTS: Dict[str, Dict[str, Any]] = {
    "gumbel, λ=0.01": {"lambda_sparsity": 0.01},
    "gumbel, λ=0.003": {"lambda_sparsity": 0.003},
    "gumbel, λ=0.03": {"lambda_sparsity": 0.03},
    "gumbel, λ=0.1": {"lambda_sparsity": 0.1},
    "gumbel, λ=0": {"lambda_sparsity": 0.0},
    "logistic, λ=0.01": {"lambda_sparsity": 0.01, "gate_noise": "logistic"},
    "logistic, λ=0.03": {"lambda_sparsity": 0.03, "gate_noise": "logistic"},
    "gumbel, λ=0.01, 300 selection steps": {"lambda_sparsity": 0.01, "min_selection_steps": 300},
    "gumbel, λ=0.01, past magnitudes frozen": {"lambda_sparsity": 0.01, "train_past_magnitudes": False},
}


def source_drift(matrix: List[List[float]], labels) -> List[Dict[str, Any]]:
    """For each redundant experience j of source k: accuracy on k right after k, and just before j."""
    out = []
    for j, label in enumerate(labels):
        if label.kind == "novel" or j == 0:
            continue
        k = label.source
        out.append({"experience": j, "kind": label.kind, "source": k,
                    "after_source": matrix[k][k], "before_repeat": matrix[j - 1][k], "after_repeat": matrix[j][k]})
    return out


def summarise(name: str, row: Dict[str, Any], reference: Dict[str, Any]) -> Dict[str, Any]:
    labels = [ExperienceRedundancy(**lab) for lab in row["ground_truth"]]
    records = decisions(labels, row.get("pruned_names", []))
    logits = {c["experience"]: c.get("final_logit") for c in row.get("candidates", [])}
    benefits = {c["experience"]: c.get("benefit_nats") for c in row.get("candidates", [])}
    by_kind = {kind: [r for r in records if r["kind"] == kind] for kind in ("novel", "repeat", "near_repeat")}
    drift = source_drift(row["accuracy_matrix"], labels)
    return {
        "variant": name,
        "valid_anytime_acc": row["avg_anytime_acc"],
        "vs_per_task": row["avg_anytime_acc"] - reference["avg_anytime_acc"],
        "active_adapters": row["active_adapters"],
        "novel_kept": f"{sum(not r['pruned'] for r in by_kind['novel'])}/{len(by_kind['novel'])}",
        "repeats_pruned": f"{sum(r['pruned'] for r in by_kind['repeat'])}/{len(by_kind['repeat'])}",
        "near_repeats_pruned": f"{sum(r['pruned'] for r in by_kind['near_repeat'])}/{len(by_kind['near_repeat'])}",
        "logits": {r["experience"]: (r["kind"], logits.get(r["experience"])) for r in records},
        "benefits": {r["experience"]: (r["kind"], benefits.get(r["experience"])) for r in records},
        "source_drop_before_repeat": statistics.mean(d["after_source"] - d["before_repeat"] for d in drift)
        if drift else float("nan"),
        "train_time_s": row["train_time_s"],
    }


def markdown(summaries: List[Dict[str, Any]], reference: Dict[str, Any]) -> str:
    lines = [f"Per-task LoRA on the same validation split: anytime {reference['avg_anytime_acc']:.3f}, "
             f"{reference['active_adapters']} adapters.", "",
             "| variant | valid anytime | vs per-task | adapters | novel kept | repeats pruned | "
             "near-repeats pruned | source drop before repeat | train s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        lines.append(f"| {s['variant']} | {s['valid_anytime_acc']:.3f} | {s['vs_per_task']:+.3f} | "
                     f"{s['active_adapters']} | {s['novel_kept']} | {s['repeats_pruned']} | "
                     f"{s['near_repeats_pruned']} | {s['source_drop_before_repeat']:.3f} | {s['train_time_s']:.0f} |")
    experiences = sorted(next(iter(summaries))["logits"]) if summaries else []
    head = ["| variant | " + " | ".join(f"{e} ({summaries[0]['logits'][e][0].replace('_', '-')})"
                                      for e in experiences) + " |", "|---|" + "---|" * len(experiences)]
    for key, title, fmt in (
        ("logits", "Gate logit at the end of each selection phase (pruned when <= 0):", "{:+.2f}"),
        ("benefits", "Benefit of each candidate when its selection starts: training loss with its gate "
                     "closed minus open, nats per sample (lambda is weighed against this):", "{:+.3f}"),
    ):
        lines += ["", title, "", *head]
        for s in summaries:
            cells = [s[key].get(e, (None, None))[1] for e in experiences]
            lines.append(f"| {s['variant']} | " + " | ".join("–" if c is None else fmt.format(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stream", default="redundant_domain_short")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--backbone", help="registry name (default: the stream's)")
    parser.add_argument("--seed", type=int, default=1993)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-per-experience", type=int, default=1000)
    parser.add_argument("--test-per-experience", type=int, default=300)
    parser.add_argument("--validation-fraction", type=float, default=0.2)
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--out", default="docs/benchmarks/studies/gate_study")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    spec = get_stream(args.stream)
    benchmark = build_stream(spec, args.seed, args.data_root, args.train_per_experience,
                             args.test_per_experience, validation_fraction=args.validation_fraction)
    if labels_of(benchmark.train_stream) is None:
        parser.error(f"{args.stream} carries no ground truth; choose a redundant_* stream")
    settings = RunSettings(epochs=args.epochs, train_per_experience=args.train_per_experience)
    out = Path(args.out)
    common = dict(eval_stream="valid", bare_sps=0.0, resume=args.resume, backbone_name=args.backbone)
    reference = run_one(spec, benchmark, "per_task_lora", args.seed, settings, out / "per_task_lora", **common)
    summaries = []
    for name in args.variants:
        row = run_one(spec, benchmark, "litelora", args.seed, settings, out / f"variant{list(VARIANTS).index(name)}",
                      overrides=VARIANTS[name], **common)
        summaries.append(summarise(name, row, reference))
        print(summaries[-1], flush=True)
        (out / "gate_study.json").write_text(json.dumps(
            {"stream": args.stream, "seed": args.seed, "epochs": args.epochs,
             "train_per_experience": args.train_per_experience, "validation_fraction": args.validation_fraction,
             "reference": {k: reference[k] for k in ("avg_anytime_acc", "active_adapters")},
             "variants": summaries}, indent=2, default=str))
    text = markdown(summaries, reference)
    (out / "gate_study.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
