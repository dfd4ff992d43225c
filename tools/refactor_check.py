"""Does a refactor change what the strategies compute? Run this under two checkouts and diff.

    git worktree add /tmp/before <commit>
    python tools/refactor_check.py /tmp/before > before.json
    python tools/refactor_check.py .           > after.json
    diff before.json after.json          # empty: same accuracies, prune decisions and weights

It trains LiteLoRA (two lambdas), per-task LoRA and Share on the test suite's digits stream
(seed 1993, one thread) with the code and the test builders of the checkout it is given.
"""

import json
import sys
import warnings
from pathlib import Path


def main(root: str) -> dict:
    root = str(Path(root).resolve())
    sys.path[:0] = [root, root + "/tests"]  # that checkout's package and builders, first
    import torch
    from avalanche.training.determinism.rng_manager import RNGManager

    import avalanche_litelora as al
    from builders import MLP_TARGETS, digits_benchmark, lite_kwargs, quiet_evaluator, sgd, tiny_mlp

    print(f"package: {Path(al.__file__).parent}", file=sys.stderr)
    torch.set_num_threads(1)
    class_incremental, task_incremental = digits_benchmark(5), digits_benchmark(5, task_labels=True)
    runs = {
        "litelora": (al.LiteLoRAStrategy, dict(lambda_sparsity=0.05, selection_lr=0.02), class_incremental),
        "litelora_default_lambda": (al.LiteLoRAStrategy, {}, class_incremental),
        "per_task": (al.PerTaskLoRAStrategy, {}, class_incremental),
        "share": (al.ShareStrategy, {}, task_incremental),
    }
    out = {}
    for name, (cls, settings, benchmark) in runs.items():
        RNGManager.set_random_seeds(1993)
        model = tiny_mlp()
        if cls is al.ShareStrategy:
            kwargs = dict(rank=4, target_modules=MLP_TARGETS, train_mb_size=32, train_epochs=2,
                          eval_mb_size=512, evaluator=quiet_evaluator())
        else:
            kwargs = lite_kwargs(train_epochs=2, evaluator=quiet_evaluator(), **settings)
            if cls is not al.LiteLoRAStrategy:
                kwargs.pop("selection_mb_size")
        strategy = cls(model=model, optimizer=sgd(model), **kwargs)
        rows = []
        for experience in benchmark.train_stream:
            strategy.train(experience)
            results = strategy.eval(benchmark.test_stream)
            rows.append({k: round(float(v), 6) for k, v in results.items() if "Top1_Acc_Stream" in k})
        decisions = [list(d) for p in strategy.plugins for d in getattr(p, "decisions", [])]
        weights = float(sum(p.double().sum() for p in strategy.model.parameters()))
        out[name] = {"accuracy_after_each_experience": rows, "decisions": decisions, "weight_sum": weights}
    return out


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "."), indent=1))
