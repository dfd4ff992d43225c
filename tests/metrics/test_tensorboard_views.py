"""The custom-scalars layout and the HParams sessions, read back by a real TensorBoard server."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from avalanche.logging import TensorboardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from avalanche_litelora import LiteLoRAStrategy
from avalanche_litelora.evaluation import litelora_evaluator
from avalanche_litelora.metrics.tensorboard_views import (
    custom_scalars_layout, hparams_of_run, write_hparams,
)
from builders import digits_benchmark, lite_kwargs, sgd, tiny_mlp

pytestmark = pytest.mark.slow  # trains runs, writes event files and serves them with TensorBoard

N_EXP = 2


def _close(evaluator) -> None:
    for logger in evaluator.loggers:
        if isinstance(logger, TensorboardLogger):
            logger.writer.close()


@pytest.fixture(scope="module")
def logdir(one_thread, tmp_path_factory):
    """Two finished runs under one logdir: LiteLoRA (bank metrics, a layout) and a second setting."""
    root = tmp_path_factory.mktemp("tb_views")
    bench = digits_benchmark(N_EXP, task_labels=False)
    runs = {}
    for name, lam in (("litelora_lam0.03", 0.03), ("litelora_lam1", 1.0)):
        evaluator = litelora_evaluator(root / name / "tensorboard", interactive=False)
        model = tiny_mlp()
        strategy = LiteLoRAStrategy(model=model, optimizer=sgd(model), **lite_kwargs(
            evaluator=evaluator, train_epochs=2, lambda_sparsity=lam, min_selection_steps=5))
        matrix = []
        for exp in bench.train_stream:
            strategy.train(exp)
            results = strategy.eval(bench.test_stream)
            matrix.append([results[f"Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp{j:03d}"] for j in range(N_EXP)])
        _close(evaluator)
        row = {"stream": "digits", "strategy": "litelora", "seed": 1993, "lambda_sparsity": lam, "epochs": 2,
               "train_per_experience": "all", "final_acc": sum(matrix[-1]) / N_EXP, "avg_anytime_acc": 0.5,
               "forgetting": 0.1, "active_adapters": len(strategy.active_adapters)}
        write_hparams(root / name / "tensorboard", *hparams_of_run(row, rank=4))
        runs[name] = (matrix, row, [exp.current_experience for exp in bench.train_stream])
    return root, runs


def test_accuracy_curves_are_the_accuracy_matrix_at_x_experience(logdir):
    root, runs = logdir
    matrix, _, order = runs["litelora_lam0.03"]
    events = EventAccumulator(str(root / "litelora_lam0.03" / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    for k, j in enumerate(order):
        curve = {e.step: e.value for e in events.Scalars(f"Accuracy_Curve/test_stream/Exp{j:03d}")}
        assert sorted(curve) == list(range(k, N_EXP))  # from the step it was learned on
        for i in curve:
            assert math.isclose(curve[i], matrix[i][j], abs_tol=1e-6)


def test_layout_regexes_match_the_tags_the_metrics_write(logdir):
    root, _ = logdir
    events = EventAccumulator(str(root / "litelora_lam0.03" / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    for category in custom_scalars_layout("test_stream").values():
        for title, (kind, regexes) in category.items():
            assert kind == "Multiline"
            matched = [t for t in tags if any(re.search(r, t) for r in regexes)]
            assert matched, f"chart {title!r} matches no scalar tag"
    accuracy = custom_scalars_layout()["Continual learning"]["Accuracy of every experience (test_stream)"][1]
    assert not any(re.search(accuracy[0], t) for t in tags if t.startswith("Top1_Acc"))
    assert "Adapter bank" not in custom_scalars_layout(bank=False)
    with pytest.raises(ValueError, match="stream"):
        custom_scalars_layout("")


def test_hparams_of_a_results_row():
    row = {"stream": "s", "strategy": "naive", "seed": 1, "lambda_sparsity": "", "epochs": 2,
           "train_per_experience": 100, "final_acc": 0.5, "avg_anytime_acc": 0.6, "forgetting": 0.2,
           "active_adapters": 0}
    hparams, metrics = hparams_of_run(row)
    assert hparams["lambda"] is None and hparams["rank"] is None and hparams["strategy"] == "naive"
    assert metrics == {"final_accuracy": 0.5, "anytime_accuracy": 0.6, "forgetting": 0.2, "active_adapters": 0.0}
    hparams, _ = hparams_of_run(dict(row, strategy="litelora", lambda_sparsity=0.03), rank=4)
    assert hparams["lambda"] == 0.03 and hparams["rank"] == 4


@pytest.mark.parametrize("hparams, metrics, error, match", [
    ({"strategy": "x"}, {"acc": float("nan")}, ValueError, "finite"),
    ({"strategy": "x"}, {"acc": True}, ValueError, "finite"),
    ({"strategy": ["x"]}, {"acc": 0.5}, TypeError, "strategy"),
    ({}, {"acc": 0.5}, ValueError, "hparams"),
    ({"strategy": "x"}, {"acc": "high"}, TypeError, "acc"),
])
def test_bad_hparams_write_nothing(tmp_path, hparams, metrics, error, match):
    with pytest.raises(error, match=match):
        write_hparams(tmp_path / "run", hparams, metrics)
    assert not (tmp_path / "run").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(logdir):
    """``tensorboard --logdir`` on a free localhost port, up to 60 s to come up, stopped after the tests."""
    if importlib.util.find_spec("tensorboard") is None:  # pragma: no cover - a dependency
        pytest.skip("tensorboard is not installed")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir[0]), "--host", "127.0.0.1",
         "--port", str(port), "--load_fast", "false", "--reload_interval", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                plugins = _get(f"{base}/data/plugins_listing")
                if plugins.get("hparams", {}).get("enabled") and plugins.get("custom_scalars", {}).get("enabled"):
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"TensorBoard did not list both plugins: {process.stderr.read1(4000)!r}"
                                     if process.poll() is not None else "TensorBoard did not list both plugins in 60 s")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_server_lists_both_plugins_and_serves_the_layout(server):
    plugins = _get(f"{server}/data/plugins_listing")
    assert plugins["custom_scalars"]["enabled"] and plugins["hparams"]["enabled"]
    layout = _get(f"{server}/data/plugin/custom_scalars/layout")
    charts = {c["title"]: c["multiline"]["tag"] for cat in layout["category"] for c in cat["chart"]}
    expected = {title: regexes for cat in custom_scalars_layout().values() for title, (_, regexes) in cat.items()}
    assert charts == expected  # the two runs' identical layouts merge into one


def test_server_builds_one_hparams_table_from_both_runs(server):
    experiment = _get(f"{server}/data/plugin/hparams/experiment", {"experimentName": ""})
    hparams = {h["name"] for h in experiment["hparamInfos"]}
    assert {"strategy", "lambda", "rank", "epochs", "seed"} <= hparams
    metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert metrics == {f"hparams/{m}" for m in ("final_accuracy", "anytime_accuracy", "forgetting", "active_adapters")}
    groups = _get(f"{server}/data/plugin/hparams/session_groups", {
        "experimentName": "", "allowedStatuses": ["STATUS_SUCCESS"], "colParams": [], "startIndex": 0,
        "sliceSize": 10})["sessionGroups"]
    assert sorted(g["hparams"]["lambda"] for g in groups) == [0.03, 1.0]
    for group in groups:
        values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        assert 0.0 <= values["hparams/final_accuracy"] <= 1.0 and values["hparams/active_adapters"] >= 1
