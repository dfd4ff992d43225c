"""One benchmark run: build the strategy, train through the stream with Avalanche, measure.

Every suite (``benchmarks.run``, ``benchmarks.text_suite``, ``benchmarks.paper``) trains
through :func:`run_one` and gets the same results row.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from avalanche.distributed import DistributedHelper
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from avalanche_litelora.backbones import create_backbone
from avalanche_litelora.evaluation import litelora_evaluator
from avalanche_litelora.metrics.tensorboard_views import hparams_of_run, write_hparams
from avalanche_litelora.training.loop import train_stream
from avalanche_litelora.metrics import (
    accuracy_row,
    average_anytime_accuracy,
    average_forgetting,
    backward_transfer,
    final_accuracy,
    just_trained_accuracy,
)
from benchmarks.harness import ground_truth
from benchmarks.harness.redundancy import CandidateRedundancyProbe, bank_summary
from benchmarks.harness.measure import PeakMemory, StepTimer, interleaved_throughputs, sample_inputs, throughput
from benchmarks.harness.methods import Budget, build_strategy, is_lora_family
from benchmarks.harness.streams import StreamSpec

#: Columns of results.csv, in order.
COLUMNS = [
    "stream", "strategy", "seed", "lambda_sparsity", "backbone", "scenario", "experiences",
    "epochs", "train_per_experience", "avg_anytime_acc", "final_acc", "just_trained_acc", "forgetting", "bwt",
    "active_adapters", "pruned_adapters", "adapter_params", "adapter_bytes", "train_time_s",
    "train_step_ms", "peak_mem_mb", "infer_bare_sps", "infer_unmerged_sps", "infer_merged_sps",
    *ground_truth.COLUMNS, "notes",
]


#: Builds a run's strategy (with its own evaluator) from the runner's measuring plugins and
#: the run's TensorBoard folder (None when the run keeps no artifacts).
StrategyBuilder = Callable[[List[Any], Optional[Path]], Any]


@dataclass
class RunSettings:
    epochs: int
    train_per_experience: Optional[int]
    device: str = "cpu"
    #: the global training batch; under torchrun each of ``world_size`` processes takes its share
    train_mb_size: int = 64
    eval_mb_size: int = 256
    #: test inputs for the inference timing; 0: inference is not timed (NaN)
    throughput_samples: int = 512
    world_size: int = 1
    #: bf16 autocast around the inference timing (the strategy brings its own for training)
    amp: bool = False
    #: write model.pt, the whole adapter model (a ViT-B/16 run's checkpoint already holds it)
    save_model: bool = True

    @property
    def process_mb_size(self) -> int:
        return self.train_mb_size // self.world_size


def _evaluator(log_dir: Optional[Path], stream: str, lora: bool) -> EvaluationPlugin:
    """The package's one-line evaluator (Avalanche metrics + forgetting curves + bank read-outs)."""
    if log_dir is None:
        return EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loggers=[])
    return litelora_evaluator(log_dir, stream=stream, interactive=False, bank=lora, redundancy=lora)


def _bank_model(strategy):
    """The adapter model of a bank strategy (unwrapped from DDP), or None for baselines."""
    return getattr(strategy, "adapter_model", None) if getattr(strategy, "is_bank", False) else None


def _inference(strategy, x, t, batch_size, bare=None) -> Dict[str, float]:
    """Unmerged, merged and (given ``bare``) bare-backbone throughput, timed interleaved."""
    model = _bank_model(strategy)
    models = {"infer_bare_sps": bare} if bare is not None else {}
    if model is None or not hasattr(model, "merge"):
        sps = interleaved_throughputs(dict(models, infer_unmerged_sps=strategy.model), x, t, batch_size)
        return dict(sps, infer_merged_sps=sps["infer_unmerged_sps"])
    model.unmerge()
    models.update(infer_unmerged_sps=model, infer_merged_sps=model)
    return interleaved_throughputs(models, x, t, batch_size, enter={"infer_merged_sps": model.merge},
                                   leave={"infer_merged_sps": model.unmerge})


def _bank_readouts(strategy) -> Dict[str, Any]:
    """Adapter counts and storage; Share counts one coefficient set per task as an adapter."""
    model = _bank_model(strategy)
    if model is None:
        return {"active_adapters": 0, "pruned_adapters": 0, "adapter_params": 0, "adapter_bytes": 0}
    params = strategy.adapter_parameter_count()
    active = model.active_adapters if hasattr(model, "active_adapters") else model.tasks
    return {
        "active_adapters": len(active),
        "pruned_adapters": len(getattr(model, "pruned_adapters", [])),
        "adapter_params": params,
        "adapter_bytes": model.adapter_parameter_bytes() if hasattr(model, "adapter_parameter_bytes")
        else params * next(model.parameters()).element_size(),
    }


def run_one(spec: StreamSpec, benchmark, strategy_name: str, seed: int, settings: "RunSettings",
            out_dir: Optional[Path], *, resume: bool = False, checkpoints: Optional[bool] = None,
            **kwargs) -> Dict[str, Any]:
    """:func:`train_and_measure`, skipped when ``resume`` finds the run's finished row.

    Without ``resume`` an earlier run in ``out_dir`` is removed first, so a rerun never mixes
    old TensorBoard events or checkpoints with new ones. Under torchrun only the main process
    removes and writes; the others wait for it.
    """
    checkpoints = _checkpointable(strategy_name) if checkpoints is None else checkpoints
    main = DistributedHelper.is_main_process
    row_file = out_dir / "row.json" if out_dir is not None else None
    if row_file is not None and resume and row_file.exists():
        return json.loads(row_file.read_text())
    if main and out_dir is not None and out_dir.exists() and not (resume and checkpoints):
        shutil.rmtree(out_dir)
    if settings.world_size > 1:
        DistributedHelper.barrier()
    row = train_and_measure(spec, benchmark, strategy_name, seed, settings, out_dir, resume=resume,
                            checkpoints=checkpoints, **kwargs)
    if row_file is not None and main:
        row_file.write_text(json.dumps(row))
    return row


def train_and_measure(
    spec: StreamSpec,
    benchmark,
    strategy_name: str,
    seed: int,
    settings: RunSettings,
    out_dir: Optional[Path],
    *,
    eval_stream: str = "test",
    overrides: Optional[Dict[str, Any]] = None,
    backbone_name: Optional[str] = None,
    bare_sps: Optional[float] = None,
    resume: bool = False,
    build: Optional[StrategyBuilder] = None,
    checkpoints: Optional[bool] = None,
    scenario: Optional[str] = None,
) -> Dict[str, Any]:
    """Train ``strategy_name`` through ``benchmark`` and return one results row.

    The accuracy matrix comes from Avalanche's own ``Top1_Acc_Exp`` after each experience;
    artifacts (matrix, adapter model, TensorBoard events, checkpoint) go to ``out_dir`` when
    given; with ``resume`` a run killed mid-stream continues from its last experience.

    ``build`` replaces methods.json's builder (the paper path's own settings); its backbone
    is not a registry name, so the bare backbone is not timed (``bare_sps``, or NaN).
    ``checkpoints`` (default: the package's strategies, not Avalanche's baselines) says whether
    the run checkpoints after each experience; ``scenario`` names it in the row (default
    task-il or class-il, from the stream).
    """
    torch.manual_seed(seed)
    backbone_name = backbone_name or spec.backbone
    device = torch.device(settings.device)
    checkpoints = out_dir is not None and (_checkpointable(strategy_name) if checkpoints is None else checkpoints)
    main = DistributedHelper.is_main_process
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    timer = StepTimer()
    # the probe reads each rank's own minibatch and is not declared rank-safe: single-process runs only
    probe = CandidateRedundancyProbe() if strategy_name.startswith("litelora") and settings.world_size == 1 else None
    plugins = [timer] + ([probe] if probe else [])
    log_dir = out_dir / "tensorboard" if out_dir is not None else None
    if build is None:
        budget = Budget(
            epochs=settings.epochs, train_mb_size=settings.train_mb_size,
            eval_mb_size=settings.eval_mb_size, device=settings.device,
            task_incremental=spec.task_incremental, plugins=plugins,
        )
        evaluator = _evaluator(log_dir, f"{eval_stream}_stream",
                               is_lora_family(strategy_name) and strategy_name != "share")
        strategy = build_strategy(strategy_name, create_backbone(backbone_name), budget, evaluator, overrides)
    else:
        strategy = build(plugins, log_dir)
    stream = getattr(benchmark, f"{eval_stream}_stream")
    n = len(benchmark.train_stream)

    matrix: List[List[float]] = []
    start = time.perf_counter()
    with PeakMemory(device) as memory:
        if strategy_name == "joint":  # one training call on the whole stream
            strategy.train(benchmark.train_stream)
            matrix = [accuracy_row(strategy.eval(stream), n, stream=f"{eval_stream}_stream")]
        else:
            results = train_stream(
                strategy, benchmark, eval_streams=[stream], resume=resume and checkpoints,
                checkpoint_dir=out_dir / "checkpoint" if checkpoints else None,
            )
            matrix = [accuracy_row(r, n, stream=f"{eval_stream}_stream") for r in results]
    train_time = time.perf_counter() - start
    test_sizes = [len(exp.dataset) for exp in stream]
    batch = settings.process_mb_size

    row: Dict[str, Any] = {
        "stream": spec.name, "strategy": strategy_name, "seed": seed,
        "lambda_sparsity": _lambda_of(strategy),
        "backbone": backbone_name,
        "scenario": scenario or ("task-il" if spec.task_incremental else "class-il"),
        "experiences": n, "epochs": settings.epochs,
        "train_per_experience": settings.train_per_experience or "all",
        **_summaries(matrix, test_sizes),
        **_bank_readouts(strategy),
        "train_time_s": train_time,
        "train_step_ms": timer.median_step_ms(batch, epochs=settings.epochs),
        "train_images_per_s": timer.images_per_s(batch) * settings.world_size,
        "peak_mem_mb": memory.peak_mb,
        "amp": "bf16" if settings.amp else "fp32", "world_size": settings.world_size, "device": str(device),
        "notes": "one model trained on the whole stream: anytime = final, no forgetting"
        if strategy_name == "joint" else "",
    }
    with torch.autocast(device.type, torch.bfloat16, enabled=settings.amp):
        row.update(_timed_inference(strategy, benchmark, settings, backbone_name, bare_sps, build is None))
    bank = _bank_model(strategy)
    lora_bank = bank is not None and hasattr(bank, "active_adapters")  # Share's model has tasks instead
    if out_dir is not None and main:
        (out_dir / "accuracy_matrix.json").write_text(json.dumps(matrix))
        write_hparams(out_dir / "tensorboard", *hparams_of_run(row, getattr(bank, "rank", None)))
        if bank is not None and settings.save_model:
            torch.save(bank.state_dict(), out_dir / "model.pt")
    for logger in strategy.evaluator.loggers:
        if hasattr(logger, "writer"):
            logger.writer.close()
    row["accuracy_matrix"] = matrix
    labels = ground_truth.labels_of(benchmark.train_stream)
    pruned = list(getattr(bank, "pruned_adapters", [])) if lora_bank else None
    row.update(ground_truth.ground_truth_columns(labels, pruned, matrix if len(matrix) == n else None))
    if labels is not None:
        row["ground_truth"] = [dict(asdict(label), classes=list(label.classes)) for label in labels]
        row["pruned_names"] = pruned or []
    if lora_bank and bank.adapter_names:
        row["redundancy"] = bank_summary(bank)
    if probe is not None:
        row["candidates"] = probe.decisions(strategy)
    return row


def _timed_inference(strategy, benchmark, settings: RunSettings, backbone_name: str,
                     bare_sps: Optional[float], registry_backbone: bool) -> Dict[str, float]:
    """The three inference throughputs; NaN where not timed (no samples asked, or the bare
    backbone of a builder that is not in the registry)."""
    nan = float("nan")
    if not settings.throughput_samples:
        return {"infer_bare_sps": nan if bare_sps is None else bare_sps, "infer_unmerged_sps": nan,
                "infer_merged_sps": nan}
    device = torch.device(settings.device)
    x, t = sample_inputs(benchmark.test_stream, settings.throughput_samples, device)
    if not registry_backbone:
        return {"infer_bare_sps": nan if bare_sps is None else bare_sps,
                **_inference(strategy, x, t, settings.eval_mb_size)}
    sps = {"infer_bare_sps": bare_sps if bare_sps is not None else bare_throughput(
        backbone_name, x, t, settings.eval_mb_size)}
    sps.update(_inference(strategy, x, t, settings.eval_mb_size, create_backbone(backbone_name).to(device)))
    return sps


def _checkpointable(strategy_name: str) -> bool:
    """The package's strategies resume mid-stream; Avalanche's baselines keep plugin state
    (LwF's previous model, EWC's importances, Replay's buffer) that no checkpoint holds, so an
    interrupted baseline run starts again."""
    return is_lora_family(strategy_name)


def bare_throughput(backbone_name: str, x, t, batch_size: int) -> float:
    """The pretrained backbone alone (its own classifier, no adapters): the cost floor."""
    model = create_backbone(backbone_name).to(x.device)
    return throughput(model, x, t, batch_size)


def _lambda_of(strategy) -> Any:
    """What LiteLoRA's lambda was, with its rule (``"0.4 relative"``); empty for the others."""
    config = getattr(strategy, "config", None)
    if not hasattr(config, "lambda_sparsity"):
        return ""
    return f"{config.lambda_sparsity:g} {config.lambda_rule}"


def weighted_accuracies(matrix: List[List[float]], test_sizes: Sequence[int]) -> List[float]:
    """After each row's training, the accuracy on every test sample seen so far: experiences
    weigh by their test samples, as the reference codes (LiteLoRA, InfLoRA) count it."""
    out = []
    for i, row in enumerate(matrix):
        seen = len(row) if len(matrix) == 1 else i + 1  # joint: one row after the whole stream
        out.append(sum(row[j] * test_sizes[j] for j in range(seen)) / sum(test_sizes[:seen]))
    return out


def weighted_anytime(matrix: List[List[float]], test_sizes: Sequence[int]) -> float:
    """The reference's anytime accuracy: :func:`weighted_accuracies` averaged over the rows."""
    rows = weighted_accuracies(matrix, test_sizes)
    return sum(rows) / len(rows)


def _summaries(matrix: List[List[float]], test_sizes: Sequence[int]) -> Dict[str, float]:
    weighted = {"avg_anytime_acc_weighted": weighted_anytime(matrix, test_sizes),
                "final_acc_weighted": weighted_accuracies(matrix, test_sizes)[-1]}
    if len(matrix) == 1 and len(matrix[0]) > 1:  # joint training: one row after the whole stream
        final = sum(matrix[0]) / len(matrix[0])
        return {"avg_anytime_acc": final, "final_acc": final, "just_trained_acc": "", "forgetting": 0.0,
                "bwt": 0.0, "forgetting_reference": 0.0, **weighted}
    return {
        "avg_anytime_acc": average_anytime_accuracy(matrix),
        "just_trained_acc": just_trained_accuracy(matrix),
        "final_acc": final_accuracy(matrix),
        "forgetting": average_forgetting(matrix),
        "bwt": backward_transfer(matrix),
        "forgetting_reference": average_forgetting(matrix, include_final=True),
        **weighted,
    }


def is_finite_row(row: Dict[str, Any]) -> bool:
    """Every numeric column is a finite number (what the published table promises)."""
    return all(
        not isinstance(row[c], float) or math.isfinite(row[c]) for c in COLUMNS if c in row
    )
