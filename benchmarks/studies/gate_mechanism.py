"""Does the gate separate novel from repeated experiences where the adapters carry the task?

    python -m benchmarks.studies.gate_mechanism [--seeds 0 1 2 3] [--lambdas 0 1] [--out results/gate_mechanism]

On the shipped ViT every candidate's benefit is below 0.08 nats (the head does the work:
BENCHMARKS.md), so the ground-truth streams cannot tell a working gate from a broken one.
Here the backbone is a frozen random projection of the pixels to 8 features: the head cannot
absorb a new pixel permutation, so a novel experience's adapter is needed and a repeat's adds
little to the adapter trained on its permutation. Stream: ``known_redundancy_stream`` domain
form, schedule ``N N R0 R1``, 512 training images per experience; the same setting as
``tests/data/test_gate_on_known_redundancy.py`` and the demo
(:func:`avalanche_litelora.data.redundancy_streams.narrow_bank`). Prints, per seed and lambda, each
candidate's benefit (loss with its gate closed minus open, nats) and the gate's decision.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from avalanche_litelora import train_stream
from avalanche_litelora.data.redundancy_streams import NARROW_SCHEDULE as SCHEDULE, narrow_bank
from benchmarks.harness.redundancy import CandidateRedundancyProbe


def run(seed: int, lambda_sparsity: float, data_root: str):
    probe = CandidateRedundancyProbe()
    stream, strategy = narrow_bank(data_root, lambda_sparsity=lambda_sparsity, seed=seed, plugins=[probe])
    train_stream(strategy, stream, eval_streams=())
    accuracy = next(v for k, v in strategy.eval(stream.test_stream).items() if k.startswith("Top1_Acc_Stream"))
    return stream, probe.decisions(strategy), accuracy


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3])
    parser.add_argument("--lambdas", nargs="+", type=float, default=[0.0, 1.0])
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--out", default="docs/benchmarks/studies/gate_mechanism")
    args = parser.parse_args(argv)
    lines = ["| seed | λ | test acc | " + " | ".join(f"{i} ({k})" for i, k in enumerate(SCHEDULE.split()) if i)
             + " |", "|---|---|---|" + "---|" * (len(SCHEDULE.split()) - 1)]
    for seed in args.seeds:
        for lam in args.lambdas:
            stream, records, accuracy = run(seed, lam, args.data_root)
            cells = [f"{r['benefit_nats']:+.2f} nats, {'pruned' if r['pruned'] else 'kept'}" for r in records]
            lines.append(f"| {seed} | {lam:g} | {accuracy:.3f} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    (out / "gate_mechanism.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
