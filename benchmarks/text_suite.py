"""The text suite: LoRA strategies and Avalanche baselines on WordNet topics with MiniLM.

    python -m benchmarks.text_suite             # the default suite (configs/text.json)
    python -m benchmarks.text_suite --quick     # a smoke run
    python -m benchmarks.text_suite --resume    # continue a killed command in the same --out

Every run goes through the harness's :func:`benchmarks.harness.runner.run_one` (Avalanche's loop,
the package's evaluator, TensorBoard events with the custom-scalars layout and an HParams
session, checkpoints for --resume). Before the runs, two reference points on the whole
19-topic problem (not continual): TF-IDF + logistic regression, and a logistic regression
on frozen mean-pooled MiniLM features (the probe). Writes results.csv, results.md,
probe.json, figures/ and runs/ under --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch

from avalanche_litelora.data.wordnet_topics import SplitWordNetTopics, load_wordnet_topics
from benchmarks.harness import figures
from benchmarks.harness.measure import sample_inputs
from benchmarks.harness.methods import load_method_configs
from benchmarks.harness.report import markdown_tables, write_csv
from benchmarks.harness.runner import RunSettings, bare_throughput, run_one
from benchmarks.harness.environment import environment
from benchmarks.harness.streams import StreamSpec, build_stream

CONFIG_FILE = Path(__file__).parent / "configs" / "text.json"
BACKBONE = "minilm_l6"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the smoke suite (a few minutes on 2 cores)")
    parser.add_argument("--strategies", nargs="+", choices=sorted(load_method_configs()))
    parser.add_argument("--seeds", nargs="+", type=int, help="topic orders")
    parser.add_argument("--lambda", dest="lambda_sparsity", type=float, help="LiteLoRA's lambda")
    probe = parser.add_mutually_exclusive_group()
    probe.add_argument("--no-probe", action="store_true", help="skip the TF-IDF and frozen-MiniLM references")
    probe.add_argument("--probe-only", action="store_true", help="only the TF-IDF and frozen-MiniLM references")
    parser.add_argument("--out", default="results/text", help="output folder")
    parser.add_argument("--data-root", default="data", help="dataset_root (WordNet is fetched offline)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--resume", action="store_true",
                        help="keep finished runs and the probe, resume the interrupted run")
    return parser.parse_args(argv)


def suite_settings(args: argparse.Namespace) -> Dict[str, Any]:
    """The named suite of configs/text.json with the command line's overrides."""
    config = json.loads(CONFIG_FILE.read_text())
    suite = dict(config["quick" if args.quick else "default"], name="quick" if args.quick else "default")
    for key in ("strategies", "seeds", "lambda_sparsity"):
        if getattr(args, key) is not None:
            suite[key] = getattr(args, key)
    suite["overrides"] = config.get("overrides", {})
    return suite


def wordnet_stream(n_experiences: int, max_length: int) -> StreamSpec:
    """The stream as the harness describes one (the seed orders the topics)."""

    def build(seed: int, root: str):
        return SplitWordNetTopics(n_experiences, seed=seed, dataset_root=root, max_length=max_length)

    return StreamSpec("wordnet_topics", build, False, BACKBONE, "wordnet_topics",
                      f"WordNet noun topics, 19 classes in {n_experiences} experiences, class-incremental")


# ------------------------------------------------------------------ reference points


def _balanced_subset(labels: Sequence[int], per_class: int, seed: int = 0) -> List[int]:
    """Up to ``per_class`` indices of every class, drawn once with a fixed generator."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    picked = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return sorted(int(i) for i in np.concatenate(picked))


def tfidf_accuracy(train_texts, train_labels, test_texts, test_labels) -> Tuple[float, float]:
    """Accuracy and balanced accuracy of TF-IDF + logistic regression (scikit-learn defaults)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    vectorizer = TfidfVectorizer()
    classifier = LogisticRegression(max_iter=2000)
    classifier.fit(vectorizer.fit_transform(train_texts), train_labels)
    predicted = classifier.predict(vectorizer.transform(test_texts))
    return float(np.mean(predicted == np.asarray(test_labels))), float(balanced_accuracy_score(test_labels, predicted))


@torch.no_grad()
def frozen_features(texts: Sequence[str], max_length: int, batch_size: int = 128) -> np.ndarray:
    """Mean-pooled all-MiniLM-L6-v2 features of ``texts`` (the backbone the suite adapts)."""
    from avalanche_litelora.backbones import create_backbone
    from avalanche_litelora.backbones.text import load_tokenizer, tokenize

    model = create_backbone(BACKBONE).eval()
    tokens = tokenize(load_tokenizer(), texts, max_length)
    return torch.cat([model(tokens[i:i + batch_size]) for i in range(0, len(tokens), batch_size)]).numpy()


def probe_accuracy(train_x, train_y, test_x, test_y) -> Tuple[float, float]:
    """Accuracy and balanced accuracy of a logistic regression on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(train_x, train_y)
    predicted = classifier.predict(test_x)
    return float(np.mean(predicted == np.asarray(test_y))), float(balanced_accuracy_score(test_y, predicted))


def reference_points(data_root: str, max_length: int, train_per_topic: int, test_per_topic: int) -> Dict[str, Any]:
    """TF-IDF on the whole split and on a balanced subsample; the frozen probe on that subsample."""
    data = load_wordnet_topics(data_root)
    train = _balanced_subset(data.train_labels, train_per_topic)
    test = _balanced_subset(data.test_labels, test_per_topic)
    pick = lambda values, idx: [values[i] for i in idx]  # noqa: E731
    sub = (pick(data.train_texts, train), pick(data.train_labels, train),
           pick(data.test_texts, test), pick(data.test_labels, test))
    out: Dict[str, Any] = {"topics": len(data.topics), "train_size": len(data.train_texts),
                           "test_size": len(data.test_texts), "subsample": [len(train), len(test)]}
    start = time.perf_counter()
    out["tfidf_full"] = tfidf_accuracy(data.train_texts, data.train_labels, data.test_texts, data.test_labels)
    out["tfidf_subsample"] = tfidf_accuracy(*sub)
    out["tfidf_s"] = time.perf_counter() - start
    start = time.perf_counter()
    out["minilm_probe_subsample"] = probe_accuracy(
        frozen_features(sub[0], max_length), sub[1], frozen_features(sub[2], max_length), sub[3])
    out["probe_s"] = time.perf_counter() - start
    return out


def reference_table(ref: Dict[str, Any]) -> str:
    n_train, n_test = ref["subsample"]
    rows = [
        (f"TF-IDF + logistic regression, whole split ({ref['train_size']:,} / {ref['test_size']:,})", ref["tfidf_full"]),
        (f"TF-IDF + logistic regression, balanced subsample ({n_train:,} / {n_test:,})", ref["tfidf_subsample"]),
        (f"frozen MiniLM (mean-pooled) + logistic regression, same subsample", ref["minilm_probe_subsample"]),
    ]
    lines = [f"### Reference points: all {ref['topics']} topics at once (not continual)", "",
             "| model (train / test definitions) | accuracy | balanced accuracy |", "|---|---|---|"]
    lines += [f"| {name} | {acc:.3f} | {bal:.3f} |" for name, (acc, bal) in rows]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the suite


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    suite = suite_settings(args)
    out = Path(args.out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    env = environment(argv, "python -m benchmarks.text_suite")
    previous = out / "environment.json"
    if args.resume and previous.exists():
        env = dict(json.loads(previous.read_text()), resumed=f"{env['date']} at commit {env['commit']}")
    started = time.perf_counter()

    reference = None
    probe_file = out / "probe.json"
    if not args.no_probe:
        if args.resume and probe_file.exists():
            reference = json.loads(probe_file.read_text())
        else:
            reference = reference_points(args.data_root, suite["max_length"], **suite["probe"])
            probe_file.write_text(json.dumps(reference, indent=2))
        print(reference_table(reference))
    if args.probe_only:
        return 0

    spec = wordnet_stream(suite["n_experiences"], suite["max_length"])
    settings = RunSettings(epochs=suite["epochs"], train_per_experience=suite["train_per_experience"],
                           device=args.device, train_mb_size=suite["train_mb_size"],
                           eval_mb_size=suite["eval_mb_size"], throughput_samples=suite["throughput_samples"])
    rows: List[Dict[str, Any]] = []
    for seed in suite["seeds"]:
        benchmark = build_stream(spec, seed, args.data_root, suite["train_per_experience"],
                                 suite["test_per_experience"])
        x, t = sample_inputs(benchmark.test_stream, settings.throughput_samples, args.device)
        bare = bare_throughput(BACKBONE, x, t, settings.eval_mb_size)
        for strategy in suite["strategies"]:
            overrides = dict(suite["overrides"].get(strategy, {}))
            if strategy == "litelora" and suite.get("lambda_sparsity") is not None:
                overrides["lambda_sparsity"] = suite["lambda_sparsity"]
            run_start = time.perf_counter()
            rows.append(run_one(spec, benchmark, strategy, seed, replace(settings), out / "runs" / f"{strategy}_seed{seed}",
                                overrides=overrides or None, backbone_name=BACKBONE, bare_sps=bare,
                                resume=args.resume))
            print(f"{strategy} seed {seed}: final acc {rows[-1]['final_acc']:.3f} "
                  f"({time.perf_counter() - run_start:.0f} s)", flush=True)
            write_csv(rows, out / "results.csv")

    elapsed = time.perf_counter() - started
    write_report(out, rows, reference, env, suite, elapsed)
    print((out / "results.md").read_text())
    return 0


def write_report(out: Path, rows, reference, env: Dict[str, str], suite: Dict[str, Any], elapsed: float) -> None:
    figures.accuracy_matrices(rows, "wordnet_topics", out / "figures" / "accuracy_matrix_wordnet_topics.png")
    figures.forgetting_curves(rows, "wordnet_topics", out / "figures" / "forgetting_wordnet_topics.png")
    env.setdefault("wall_time_min", f"{elapsed / 60:.1f}")
    header = [
        f"Text suite `{suite['name']}`: {suite['n_experiences']} experiences, {suite['epochs']} epoch(s) "
        f"each, {suite['train_per_experience']} training / {suite['test_per_experience']} test definitions "
        f"per experience, at most {suite['max_length']} tokens, minibatch {suite['train_mb_size']}; "
        + (f"LiteLoRA λ = {suite['lambda_sparsity']:g} (given, not swept)." if suite.get("lambda_sparsity") is not None
           else "LiteLoRA λ: its config's default rule (not swept)."), "",
        *(f"- {k}: {v}" for k, v in env.items() if k != "wall_time_min"),
        f"- wall time of the command: {env['wall_time_min']} min"
        + (f" (then {elapsed / 60:.1f} min to resume)" if "resumed" in env else ""), "",
    ]
    text = "\n".join(header) + "\n" + (reference_table(reference) + "\n" if reference else "") + markdown_tables(rows)
    (out / "results.md").write_text(text)
    (out / "environment.json").write_text(json.dumps(env, indent=2))


if __name__ == "__main__":
    sys.exit(main())
