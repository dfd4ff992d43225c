"""results.md of a ``--paper`` command: our numbers beside the reference's published ones."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from benchmarks.harness.report import markdown_tables

#: The reference's three task orders, in the order its README reports them.
ORDERS = (1993, 1995, 2000)
METHOD_NAMES = {"litelora": "LiteLoRA", "sdlora": "SD-LoRA (per-task LoRA)", "inflora": "InfLoRA", "olora": "O-LoRA"}
#: The methods whose numbers the LiteLoRA reference README publishes, per class order.
README_METHODS = ("litelora", "sdlora")


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
    for method in cfg["strategies"]:
        if method in README_METHODS and method != cfg["strategies"][0] and cfg["strategies"][0] in README_METHODS:
            continue  # LiteLoRA and SD-LoRA share the benchmark's budget: said once
        ours = cfg["methods"].get(method, cfg)
        published = cfg["as_published"]["litelora" if method in README_METHODS else method]
        who = "" if method in README_METHODS else f"{METHOD_NAMES[method]}: "
        if ours["train_epochs"] != published["train_epochs"]:
            reasons.append(f"{who}{ours['train_epochs']} epoch(s) instead of {published['train_epochs']}")
        if ours["train_mb_size"] != published["train_mb_size"]:
            reasons.append(f"{who}batch {ours['train_mb_size']} instead of {published['train_mb_size']}")
    return reasons


def _pct(value) -> str:
    return f"{100 * value:.2f}" if isinstance(value, (int, float)) else "–"


def reference_table(rows: Sequence[Dict[str, Any]], reference: Dict[str, Any], name: str) -> str:
    rows = [r for r in rows if r["strategy"] in README_METHODS]
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


def _mean_pm(values: Sequence[float]) -> str:
    mean = sum(values) / len(values)
    spread = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else None
    return f"{100 * mean:.2f}" + (f" ± {100 * spread:.2f}" if spread is not None else "")


def own_papers_table(rows: Sequence[Dict[str, Any]], reference: Dict[str, Any]) -> str:
    """Methods published as mean ± std over their own runs (InfLoRA, O-LoRA): ours over our
    class orders beside theirs, or "none published"."""
    methods = [m for m in dict.fromkeys(r["strategy"] for r in rows) if m not in README_METHODS]
    if not methods:
        return ""
    lines = ["| method | orders (seeds) | anytime acc % (ours) | published | final acc % (ours) | published | "
             "source |", "|---|---|---|---|---|---|---|"]
    for method in methods:
        mine = [r for r in rows if r["strategy"] == method]
        published = reference.get(method, {})

        def ref(key):
            return f"{published[key][0]:.2f} ± {published[key][1]:.2f}" if key in published else "none published"

        runs = f" ({published['trials']} runs)" if "trials" in published else ""
        lines.append(f"| {METHOD_NAMES[method]} | {', '.join(str(r['seed']) for r in mine)} | "
                     f"{_mean_pm([r['avg_anytime_acc_weighted'] for r in mine])} | {ref('anytime')} | "
                     f"{_mean_pm([r['final_acc_weighted'] for r in mine])} | {ref('final')} | "
                     f"{published.get('source', 'none published')}{runs} |")
    return ("\n### Against the methods' own papers\n\nAnytime and final accuracy count every test sample "
            "seen so far (`avg_anytime_acc_weighted`, `final_acc_weighted`); the papers' figures are the mean ± "
            "std of their own runs and class order (configs/paper.json, comments `reference_*`).\n\n"
            + "\n".join(lines) + "\n")


def cost_lines(rows: Sequence[Dict[str, Any]]) -> str:
    lines = ["| method | seed | device | precision | processes | train img/s | median step ms | peak memory MB "
             "| inference merged img/s | train+eval s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['strategy']} | {r['seed']} | {r['device']} | {r['amp']} | {r['world_size']} | "
                     f"{r['train_images_per_s']:.1f} | {r['train_step_ms']:.0f} | {r['peak_mem_mb']:.0f} | "
                     f"{r['infer_merged_sps']:.1f} | {r['train_time_s']:.0f} |")
    return "\n".join(lines) + "\n"


def readme_settings(cfg: Dict[str, Any]) -> str:
    """LiteLoRA's and SD-LoRA's settings on this benchmark, in a sentence."""
    return (f"Backbone `{cfg['pretrained']}`, rank {cfg['rank']} on q/v, {cfg['train_epochs']} magnitude epoch(s), "
            f"SGD lr {cfg['lr']:g} momentum {cfg['momentum']:g} weight decay {cfg['weight_decay']:g}, batch "
            f"{cfg['train_mb_size']}; LiteLoRA: selection {cfg['selection_epochs']} epoch, batch "
            f"{cfg['selection_mb_size']}, AdamW lr {cfg['selection_lr']:g}, λ {cfg['lambda_sparsity']:g}, "
            f"initial logit {cfg['init_logit']:g}.")


def method_lines(rows: Sequence[Dict[str, Any]], cfg: Dict[str, Any]) -> List[str]:
    """One line per method with its own published settings, as it ran."""
    lines = []
    for method in dict.fromkeys(r["strategy"] for r in rows):
        if method not in cfg["methods"]:
            continue
        m = cfg["methods"][method]
        specific = (f"k/v, DualGPM threshold {m['threshold_start']:g} → {m['threshold_end']:g} over "
                    f"{cfg['n_experiences']} tasks" if method == "inflora" else
                    f"q/v, λ1 {m['lambda_orth']:g}, λ2 {m['lambda_l2']:g}, lora_alpha {m.get('lora_alpha')}")
        lines += [f"{METHOD_NAMES[method]}: Adam lr {m['lr']:g} (InfLoRA's cosine per task), {m['train_epochs']} "
                  f"epoch(s), batch {m['train_mb_size']}, rank {m['rank']} on {specific}.", ""]
    return lines


def paper_report(rows: Sequence[Dict[str, Any]], cfg: Dict[str, Any], env: Dict[str, str], *,
                 synthetic: bool, random_init: bool) -> str:
    reasons = departures(cfg, synthetic, random_init)
    readme = any(r["strategy"] in README_METHODS for r in rows)
    head = [
        f"## Paper configuration `{cfg['name']}` ({cfg['builder']}, {cfg['n_experiences']} experiences of "
        f"{cfg['n_classes'] // cfg['n_experiences'] if cfg['builder'] != 'DomainNet' else cfg['n_classes']} classes)",
        "",
        readme_settings(cfg) if readme else f"Backbone `{cfg['pretrained']}`.",
        "",
        *method_lines(rows, cfg),
        *(f"- {k}: {v}" for k, v in env.items()),
        "",
    ]
    if reasons:
        head += [f"**Not the paper's run** ({'; '.join(reasons)}): the reference's numbers are shown "
                 "beside ours for orientation only.", ""]
    return ("\n".join(head)
            + ("\n### Against the reference (tanguy8001/LiteLoRA README)\n\n"
               + reference_table(rows, cfg["reference"], cfg["name"]) if readme else "")
            + own_papers_table(rows, cfg["reference"])
            + "\n### Cost\n\n" + cost_lines(rows) + "\n### Harness table\n\n" + markdown_tables(rows))
