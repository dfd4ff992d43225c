"""results.csv, the Markdown tables and the goal checks, from the rows of the runs."""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Tuple

from benchmarks.harness import ground_truth
from benchmarks.harness.runner import COLUMNS

#: Columns of the Markdown table: (csv column, header, format).
TABLE = [
    ("avg_anytime_acc", "avg anytime acc", "{:.3f}"),
    ("final_acc", "final acc", "{:.3f}"),
    ("just_trained_acc", "just-trained acc", "{:.3f}"),
    ("forgetting", "forgetting", "{:.3f}"),
    ("bwt", "BWT", "{:+.3f}"),
    ("active_adapters", "active adapters", "{:.1f}"),
    ("adapter_params", "adapter params", "{:,.0f}"),
    ("train_time_s", "train s", "{:.0f}"),
    ("train_step_ms", "step ms", "{:.1f}"),
    ("peak_mem_mb", "peak MB", "{:.0f}"),
    ("infer_merged_sps", "infer merged /s", "{:,.0f}"),
    ("infer_unmerged_sps", "infer unmerged /s", "{:,.0f}"),
]

REHEARSAL_FREE = ("naive", "ewc", "lwf")


def write_csv(rows: Sequence[Dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _groups(rows: Iterable[Dict[str, Any]]) -> Dict[Tuple[str, str], List[Dict[str, Any]]]:
    groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["stream"], row["strategy"])].append(row)
    return groups


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    values = [float(v) for v in values]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _cell(values: Sequence[float], fmt: str) -> str:
    values = [v for v in values if v not in ("", None)]
    if not values:
        return "–"
    mean, std = mean_std(values)
    return fmt.format(mean) + (" ± " + fmt.format(std).lstrip("+") if len(values) > 1 else "")


def markdown_tables(rows: Sequence[Dict[str, Any]]) -> str:
    """One table per stream: mean ± std over seeds of every reported column."""
    lines: List[str] = []
    groups = _groups(rows)
    for stream in dict.fromkeys(r["stream"] for r in rows):
        first = next(r for r in rows if r["stream"] == stream)
        seeds = sorted({r["seed"] for r in rows if r["stream"] == stream})
        lines += [
            f"### {stream} ({first['scenario']}, {first['experiences']} experiences, "
            f"{first['train_per_experience']} training samples per experience, "
            f"backbone {first['backbone']}, seeds {', '.join(map(str, seeds))})", "",
            "| strategy | " + " | ".join(h for _, h, _ in TABLE) + " |",
            "|---" * (len(TABLE) + 1) + "|",
        ]
        for (s, strategy), group in groups.items():
            if s != stream:
                continue
            name = strategy + (f" (λ={group[0]['lambda_sparsity']})" if group[0].get("lambda_sparsity") not in ("", None) else "")
            cells = [_cell([r[c] for r in group], fmt) for c, _, fmt in TABLE]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _mean(groups, stream: str, strategy: str, column: str):
    group = groups.get((stream, strategy))
    return mean_std([r[column] for r in group])[0] if group else None


def goal_checks(rows: Sequence[Dict[str, Any]]) -> List[Tuple[str, str, bool]]:
    """The project's targets, per stream: (stream, what was measured, met?)."""
    groups = _groups(rows)
    checks: List[Tuple[str, str, bool]] = []
    for stream in dict.fromkeys(r["stream"] for r in rows):
        m = lambda strategy, column: _mean(groups, stream, strategy, column)  # noqa: E731
        lite_ad, task_ad = m("litelora", "active_adapters"), m("per_task_lora", "active_adapters")
        if lite_ad is not None and task_ad is not None:
            fewer = 1.0 - lite_ad / task_ad
            lite_acc, task_acc = m("litelora", "avg_anytime_acc"), m("per_task_lora", "avg_anytime_acc")
            checks.append((stream, f"LiteLoRA keeps {fewer:.0%} fewer adapters than per-task LoRA "
                                   f"(goal ≥ 40%)", fewer >= 0.40))
            checks.append((stream, f"avg anytime accuracy: LiteLoRA {lite_acc:.3f}, per-task LoRA "
                                   f"{task_acc:.3f} (goal: at most 1 point below)",
                           task_acc - lite_acc <= 0.01))
            ratio = m("litelora", "train_step_ms") / m("per_task_lora", "train_step_ms")
            checks.append((stream, f"LiteLoRA step / per-task-LoRA step = {ratio:.2f} (goal ≤ 1.10)",
                           ratio <= 1.10))
        head, task_acc = m("head_only", "avg_anytime_acc"), m("per_task_lora", "avg_anytime_acc")
        if head is not None and task_acc is not None:
            gap = task_acc - head
            just = m("per_task_lora", "just_trained_acc") - m("head_only", "just_trained_acc")
            checks.append((stream, f"per-task LoRA above head-only: {gap * 100:+.1f} points anytime "
                                   f"(goal ≥ 5), {just * 100:+.1f} on the just-trained experience (goal ≥ 15)",
                           gap >= 0.05 and just >= 0.15))
        gt = [ground_truth.rates(r) for r in rows if r["stream"] == stream and r["strategy"] == "litelora"]
        gt = [g for g in gt if g is not None]
        for prefix, what in (("", "structural labels"), ("bank_", "labels relative to the bank")):
            kept = _nanmean(g[prefix + "novel_kept_rate"] for g in gt)
            pruned = _nanmean(g[prefix + "redundant_pruned_rate"] for g in gt)
            if kept is not None:
                checks.append((stream, f"{what}: LiteLoRA keeps {kept:.0%} of novel candidates (goal ≥ 90%)",
                               kept >= 0.90))
            if pruned is not None:
                checks.append((stream, f"{what}: LiteLoRA prunes {pruned:.0%} of redundant candidates "
                                       f"(goal ≥ 80%)", pruned >= 0.80))
        lite_final = m("litelora", "final_acc")
        for baseline in REHEARSAL_FREE:
            base = m(baseline, "final_acc")
            if lite_final is not None and base is not None:
                checks.append((stream, f"LiteLoRA final {lite_final:.3f} vs {baseline} {base:.3f}",
                               lite_final > base))
        replay = m("replay", "final_acc")
        if lite_final is not None and replay is not None:
            checks.append((stream, f"LiteLoRA final {lite_final:.3f} vs Replay-500 {replay:.3f} "
                                   f"(an aim, not a goal)", lite_final >= replay))
        share_params, task_params = m("share", "adapter_params"), m("per_task_lora", "adapter_params")
        if share_params and task_params:
            share_acc, task_acc = m("share", "avg_anytime_acc"), m("per_task_lora", "avg_anytime_acc")
            checks.append((stream, f"Share stores {task_params / share_params:.1f}x fewer adapter "
                                   f"parameters than per-task LoRA (goal ≥ 10x)",
                           task_params / share_params >= 10))
            checks.append((stream, f"avg anytime accuracy: Share {share_acc:.3f}, per-task LoRA "
                                   f"{task_acc:.3f} (goal: at most 2 points below)",
                           task_acc - share_acc <= 0.02))
        if lite_final is not None:
            merged, bare = m("litelora", "infer_merged_sps"), m("litelora", "infer_bare_sps")
            checks.append((stream, f"merged inference time / bare backbone = {bare / merged:.2f} "
                                   f"(goal ≤ 1.05)", bare / merged <= 1.05))
    return checks


def markdown_goals(checks: Sequence[Tuple[str, str, bool]]) -> str:
    lines = ["| stream | measured | goal met |", "|---|---|---|"]
    lines += [f"| {s} | {text} | {'yes' if ok else '**missed**'} |" for s, text, ok in checks]
    return "\n".join(lines) + "\n"


def _nanmean(values: Iterable[float]):
    """The mean of the numbers that are not NaN (None when there are none)."""
    values = [v for v in values if v == v]
    return statistics.mean(values) if values else None
