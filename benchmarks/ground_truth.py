"""Scoring the gate against ground truth: which candidates of a known-redundancy stream it kept.

Experience ``i`` of a bank strategy opens candidate ``adapter_i``; experience 0 has no bank to
compare against, so no decision is made there and it is left out of every count. A candidate
is *pruned* when its name is in the final model's ``pruned_adapters``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from avalanche_litelora.data.redundancy_streams import ExperienceRedundancy, stream_redundancy

#: The results.csv columns this module fills (empty on streams without ground truth).
COLUMNS = ("redundant_total", "redundant_pruned", "novel_total", "novel_kept")


def labels_of(stream) -> Optional[Sequence[ExperienceRedundancy]]:
    """The stream's ground-truth labels, or None when it is not a known-redundancy stream."""
    try:
        return stream_redundancy(stream)
    except ValueError:
        return None


def decisions(labels: Sequence[ExperienceRedundancy], pruned: Sequence[str],
              first: int = 1, stop: Optional[int] = None) -> List[Dict[str, Any]]:
    """One record per decided experience in ``[first, stop)``: its label and whether it was pruned."""
    pruned = set(pruned)
    stop = len(labels) if stop is None else stop
    return [
        {"experience": i, "kind": labels[i].kind, "source": labels[i].source,
         "transform": labels[i].transform, "pruned": f"adapter_{i}" in pruned}
        for i in range(max(first, 1), stop)
    ]


def counts(records: Sequence[Dict[str, Any]]) -> Dict[str, int]:
    """The four ground-truth columns from :func:`decisions` records."""
    redundant = [r for r in records if r["kind"] != "novel"]
    novel = [r for r in records if r["kind"] == "novel"]
    return {
        "redundant_total": len(redundant),
        "redundant_pruned": sum(r["pruned"] for r in redundant),
        "novel_total": len(novel),
        "novel_kept": sum(not r["pruned"] for r in novel),
    }


def ground_truth_columns(labels: Optional[Sequence[ExperienceRedundancy]],
                         pruned: Optional[Sequence[str]]) -> Dict[str, Any]:
    """The results.csv columns of one run: empty without labels or without an adapter bank."""
    if labels is None or pruned is None:
        return {c: "" for c in COLUMNS}
    return counts(decisions(labels, pruned))


def rates(row: Dict[str, Any]) -> Optional[Dict[str, float]]:
    """Share of novel candidates kept and of redundant ones pruned (None without ground truth)."""
    if row.get("novel_total") in ("", None):
        return None
    novel, redundant = int(row["novel_total"]), int(row["redundant_total"])
    return {
        "novel_kept_rate": int(row["novel_kept"]) / novel if novel else float("nan"),
        "redundant_pruned_rate": int(row["redundant_pruned"]) / redundant if redundant else float("nan"),
    }


def decision_table(rows: Sequence[Dict[str, Any]]) -> str:
    """Markdown: per ground-truth stream and seed, every experience's label and LiteLoRA's decision,
    then the counts over the whole stream and over each half (the long-stream question)."""
    lines: List[str] = []
    for row in rows:
        labels = row.get("ground_truth")
        if not labels or not row["strategy"].startswith("litelora"):  # the others keep everything
            continue
        records = decisions([ExperienceRedundancy(**lab) for lab in labels], row.get("pruned_names", []))
        probe = {c["experience"]: c for c in row.get("candidates", [])}  # benefit and logit, when probed
        lines += [f"**{row['stream']}**, {row['strategy']}, seed {row['seed']}, "
                  f"λ = {row['lambda_sparsity']}", "",
                  "| experience | kind | of | transform | benefit (nats) | final logit | decision |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['experience']} | {r['kind']} | {'' if r['source'] is None else r['source']} | "
                  f"{r['transform']} | {_cell(probe, r['experience'], 'benefit_nats', '{:+.3f}')} | "
                  f"{_cell(probe, r['experience'], 'final_logit', '{:+.2f}')} | "
                  f"{'pruned' if r['pruned'] else 'kept'} |" for r in records]
        n = len(labels)
        halves = [("whole stream", 1, n)] + ([("first half", 1, n // 2), ("second half", n // 2, n)]
                                             if n >= 12 else [])
        lines += ["", "| part | novel kept | repeats pruned | near-repeats pruned |", "|---|---|---|---|"]
        for name, start, stop in halves:
            part = [r for r in records if start <= r["experience"] < stop]
            c = counts(part)
            near = [r for r in part if r["kind"] == "near_repeat"]
            repeats = [r for r in part if r["kind"] == "repeat"]
            lines.append(f"| {name} (experiences {start}-{stop - 1}) | {c['novel_kept']}/{c['novel_total']} | "
                         f"{sum(r['pruned'] for r in repeats)}/{len(repeats)} | "
                         f"{sum(r['pruned'] for r in near)}/{len(near)} |")
        lines.append("")
    return "\n".join(lines) + ("\n" if lines else "")


def _cell(probe: Dict[int, Dict[str, Any]], experience: int, key: str, fmt: str) -> str:
    value = probe.get(experience, {}).get(key)
    return "–" if value is None else fmt.format(value)
