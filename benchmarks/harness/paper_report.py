"""results.md of a ``--paper`` command: our numbers beside the reference's published ones."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from benchmarks.harness.report import markdown_tables

#: The reference's three task orders, in the order its README reports them.
ORDERS = (1993, 1995, 2000)
METHOD_NAMES = {"litelora": "LiteLoRA", "sdlora": "SD-LoRA (per-task LoRA)"}


def departures(cfg: Dict[str, Any], synthetic: bool, random_init: bool) -> List[str]:
    """Why a run is not the paper's configuration (empty when it is)."""
    reasons = []
    if synthetic:
        reasons.append("synthetic images")
    if random_init:
        reasons.append("a randomly initialised ViT-B/16")
    if cfg["experiences"] < cfg["n_experiences"]:
        reasons.append(f"{cfg['experiences']} of {cfg['n_experiences']} experiences")
    if cfg["train_per_experience"] or cfg["test_per_experience"]:
        reasons.append(f"{cfg['train_per_experience'] or 'all'} training / {cfg['test_per_experience'] or 'all'} "
                       "test samples per experience")
    if cfg["train_epochs"] != 20:
        reasons.append(f"{cfg['train_epochs']} epoch(s) instead of 20")
    if cfg["train_mb_size"] != 128:
        reasons.append(f"batch {cfg['train_mb_size']} instead of 128")
    return reasons


def _pct(value) -> str:
    return f"{100 * value:.2f}" if isinstance(value, (int, float)) else "–"


def reference_table(rows: Sequence[Dict[str, Any]], reference: Dict[str, Any], name: str) -> str:
    lines = ["| method | order (seed) | anytime acc % (ours) | reference | forgetting % (ours) | reference "
             "| adapters kept (ours) | reference |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        published = reference.get(row["strategy"], {})
        index = ORDERS.index(row["seed"]) if row["seed"] in ORDERS else None

        def ref(key, fmt="{:.2f}"):
            return fmt.format(published[key][index]) if published and index is not None else "–"

        lines.append(
            f"| {METHOD_NAMES.get(row['strategy'], row['strategy'])} | {row['seed']} | "
            f"{_pct(row['avg_anytime_acc_weighted'])} | {ref('anytime')} | {_pct(row['forgetting'])} "
            f"({_pct(row.get('forgetting_reference'))} as the reference counts it) | "
            f"{ref('forgetting')} | {row['active_adapters']} of {row['experiences']} | {ref('adapters', '{}')} |")
    text = "\n".join(lines) + "\n"
    if not reference:
        text += f"\nThe reference README publishes no numbers for `{name}`.\n"
    elif any(r["experiences"] > 10 for r in rows):
        text += ("\nThe reference's forgetting for more than 10 tasks is computed from accuracy rows sorted "
                 "as strings, so those figures are not comparable.\n")
    return text


def cost_lines(rows: Sequence[Dict[str, Any]]) -> str:
    lines = ["| method | seed | device | precision | processes | train img/s | median step ms | peak memory MB "
             "| inference merged img/s | train+eval s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['strategy']} | {r['seed']} | {r['device']} | {r['amp']} | {r['world_size']} | "
                     f"{r['train_images_per_s']:.1f} | {r['train_step_ms']:.0f} | {r['peak_mem_mb']:.0f} | "
                     f"{r['infer_merged_sps']:.1f} | {r['train_time_s']:.0f} |")
    return "\n".join(lines) + "\n"


def paper_report(rows: Sequence[Dict[str, Any]], cfg: Dict[str, Any], env: Dict[str, str], *,
                 synthetic: bool, random_init: bool) -> str:
    reasons = departures(cfg, synthetic, random_init)
    head = [
        f"## Paper configuration `{cfg['name']}` ({cfg['builder']}, {cfg['n_experiences']} experiences of "
        f"{cfg['n_classes'] // cfg['n_experiences'] if cfg['builder'] != 'DomainNet' else cfg['n_classes']} classes)",
        "",
        f"Backbone `{cfg['pretrained']}`, rank {cfg['rank']} on q/v, {cfg['train_epochs']} magnitude epoch(s), "
        f"SGD lr {cfg['lr']:g} momentum {cfg['momentum']:g} weight decay {cfg['weight_decay']:g}, batch "
        f"{cfg['train_mb_size']}; LiteLoRA: selection {cfg['selection_epochs']} epoch, batch "
        f"{cfg['selection_mb_size']}, AdamW lr {cfg['selection_lr']:g}, λ {cfg['lambda_sparsity']:g}, "
        f"initial logit {cfg['init_logit']:g}.",
        "",
        *(f"- {k}: {v}" for k, v in env.items()),
        "",
    ]
    if reasons:
        head += [f"**Not the paper's run** ({'; '.join(reasons)}): the reference's numbers are shown "
                 "beside ours for orientation only.", ""]
    return ("\n".join(head) + "\n### Against the reference (tanguy8001/LiteLoRA README)\n\n"
            + reference_table(rows, cfg["reference"], cfg["name"])
            + "\n### Cost\n\n" + cost_lines(rows) + "\n### Harness table\n\n" + markdown_tables(rows))
