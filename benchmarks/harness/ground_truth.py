"""Scoring the gate against ground truth: which candidates of a known-redundancy stream it kept.

Experience ``i`` of a bank strategy opens candidate ``adapter_i``; experience 0 has no bank to
compare against, so no decision is made there and it is left out of every count. A candidate
is *pruned* when its name is in the final model's ``pruned_adapters``.

Two scores. The *structural* one takes the stream's labels as they are: every repeat and
near-repeat is redundant. The *bank-relative* one asks whether the run's own bank still
served the source when the repeat arrived: a repeat is redundant for the bank when the
bank's test accuracy on it, just before it trains, is at least its source's accuracy right
after the source trained minus :data:`SERVE_MARGIN`. Otherwise the bank had forgotten it,
and the repeat counts as novel for the bank.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from avalanche_litelora.data.redundancy_streams import ExperienceRedundancy, stream_redundancy
from benchmarks.harness.methods import has_candidates

#: The results.csv columns this module fills (empty on streams without ground truth).
COLUMNS = ("redundant_total", "redundant_pruned", "novel_total", "novel_kept",
           "bank_redundant_total", "bank_redundant_pruned", "bank_novel_total", "bank_novel_kept")
#: How far below its source's accuracy right after training a repeat's accuracy before it
#: trains may be for the bank to still serve it (accuracy, 0-1).
SERVE_MARGIN = 0.05


def labels_of(stream) -> Optional[Sequence[ExperienceRedundancy]]:
    """The stream's ground-truth labels, or None when it is not a known-redundancy stream."""
    try:
        return stream_redundancy(stream)
    except ValueError:
        return None


def bank_relative(label: ExperienceRedundancy, i: int,
                  matrix: Optional[Sequence[Sequence[float]]]) -> Dict[str, Any]:
    """Experience ``i``'s accuracy before it trains, its source's right after the source
    trained, and whether the bank still served it (None without a per-experience matrix)."""
    if not matrix or len(matrix) <= i or len(matrix[0]) <= i or i == 0:
        return {"acc_before": None, "source_acc_after": None, "redundant_for_bank": None}
    before = float(matrix[i - 1][i])
    if label.source is None:
        return {"acc_before": before, "source_acc_after": None, "redundant_for_bank": False}
    after = float(matrix[label.source][label.source])
    return {"acc_before": before, "source_acc_after": after,
            "redundant_for_bank": before >= after - SERVE_MARGIN}


def decisions(labels: Sequence[ExperienceRedundancy], pruned: Sequence[str],
              first: int = 1, stop: Optional[int] = None,
              matrix: Optional[Sequence[Sequence[float]]] = None) -> List[Dict[str, Any]]:
    """One record per decided experience in ``[first, stop)``: its label, whether it was
    pruned and, given the run's accuracy matrix, its bank-relative label."""
    pruned = set(pruned)
    stop = len(labels) if stop is None else stop
    return [
        {"experience": i, "kind": labels[i].kind, "source": labels[i].source,
         "transform": labels[i].transform, "pruned": f"adapter_{i}" in pruned,
         **bank_relative(labels[i], i, matrix)}
        for i in range(max(first, 1), stop)
    ]


def counts(records: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """The ground-truth columns from :func:`decisions` records (bank-relative ones empty
    when the records carry no bank-relative label)."""
    redundant = [r for r in records if r["kind"] != "novel"]
    novel = [r for r in records if r["kind"] == "novel"]
    out: Dict[str, Any] = {
        "redundant_total": len(redundant),
        "redundant_pruned": sum(r["pruned"] for r in redundant),
        "novel_total": len(novel),
        "novel_kept": sum(not r["pruned"] for r in novel),
    }
    if any(r.get("redundant_for_bank") is None for r in records):
        return dict(out, **{c: "" for c in COLUMNS if c.startswith("bank_")})
    served = [r for r in records if r["redundant_for_bank"]]
    unserved = [r for r in records if not r["redundant_for_bank"]]
    return dict(out, bank_redundant_total=len(served), bank_redundant_pruned=sum(r["pruned"] for r in served),
                bank_novel_total=len(unserved), bank_novel_kept=sum(not r["pruned"] for r in unserved))


def ground_truth_columns(labels: Optional[Sequence[ExperienceRedundancy]], pruned: Optional[Sequence[str]],
                         matrix: Optional[Sequence[Sequence[float]]] = None) -> Dict[str, Any]:
    """The results.csv columns of one run: empty without labels or without an adapter bank."""
    if labels is None or pruned is None:
        return {c: "" for c in COLUMNS}
    return counts(decisions(labels, pruned, matrix=matrix))


def rates(row: Dict[str, Any]) -> Optional[Dict[str, float]]:
    """Share of novel candidates kept and of redundant ones pruned (None without ground truth)."""
    if row.get("novel_total") in ("", None):
        return None
    def rate(part, whole):
        return int(row[part]) / int(row[whole]) if row.get(whole) not in ("", None, 0) else float("nan")

    return {
        "novel_kept_rate": rate("novel_kept", "novel_total"),
        "redundant_pruned_rate": rate("redundant_pruned", "redundant_total"),
        "bank_novel_kept_rate": rate("bank_novel_kept", "bank_novel_total"),
        "bank_redundant_pruned_rate": rate("bank_redundant_pruned", "bank_redundant_total"),
    }


def decision_table(rows: Sequence[Dict[str, Any]]) -> str:
    """Markdown: per ground-truth stream and seed, every experience's label and LiteLoRA's decision,
    then the counts over the whole stream and over each half (the long-stream question)."""
    lines: List[str] = []
    for row in rows:
        labels = row.get("ground_truth")
        if not labels or not has_candidates(row["strategy"]):  # the others keep everything
            continue
        records = decisions([ExperienceRedundancy(**lab) for lab in labels], row.get("pruned_names", []),
                            matrix=row.get("accuracy_matrix"))
        probe = {c["experience"]: c for c in row.get("candidates", [])}  # benefit and logit, when probed
        lines += [f"**{row['stream']}**, {row['strategy']}, seed {row['seed']}, "
                  f"λ = {row['lambda_sparsity']}", "",
                  "| experience | kind | of | transform | acc before | source acc after | for the bank "
                  "| benefit (nats) | final logit | decision |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['experience']} | {r['kind']} | {'' if r['source'] is None else r['source']} | "
                  f"{r['transform']} | {_fmt(r['acc_before'])} | {_fmt(r['source_acc_after'])} | "
                  f"{_bank_label(r)} | {_cell(probe, r['experience'], 'benefit_nats', '{:+.3f}')} | "
                  f"{_cell(probe, r['experience'], 'final_logit', '{:+.2f}')} | "
                  f"{'pruned' if r['pruned'] else 'kept'} |" for r in records]
        n = len(labels)
        halves = [("whole stream", 1, n)] + ([("first half", 1, n // 2), ("second half", n // 2, n)]
                                             if n >= 12 else [])
        lines += ["", "| part | novel kept | repeats pruned | near-repeats pruned | novel for the bank kept "
                  "| redundant for the bank pruned |", "|---|---|---|---|---|---|"]
        for name, start, stop in halves:
            part = [r for r in records if start <= r["experience"] < stop]
            c = counts(part)
            near = [r for r in part if r["kind"] == "near_repeat"]
            repeats = [r for r in part if r["kind"] == "repeat"]
            lines.append(f"| {name} (experiences {start}-{stop - 1}) | {c['novel_kept']}/{c['novel_total']} | "
                         f"{sum(r['pruned'] for r in repeats)}/{len(repeats)} | "
                         f"{sum(r['pruned'] for r in near)}/{len(near)} | "
                         f"{_ratio(c, 'bank_novel_kept', 'bank_novel_total')} | "
                         f"{_ratio(c, 'bank_redundant_pruned', 'bank_redundant_total')} |")
        lines.append("")
    return "\n".join(lines) + ("\n" if lines else "")


def _cell(probe: Dict[int, Dict[str, Any]], experience: int, key: str, fmt: str) -> str:
    value = probe.get(experience, {}).get(key)
    return "–" if value is None else fmt.format(value)


def _fmt(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.3f}"


def _bank_label(record: Dict[str, Any]) -> str:
    if record["redundant_for_bank"] is None:
        return "–"
    return "redundant" if record["redundant_for_bank"] else "novel"


def _ratio(counted: Dict[str, Any], part: str, whole: str) -> str:
    return "–" if counted[whole] == "" else f"{counted[part]}/{counted[whole]}"
