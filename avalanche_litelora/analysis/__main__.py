"""``python -m avalanche_litelora.analysis FILE [--side input]``: redundancy table, PNG heatmaps, TensorBoard."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from avalanche_litelora.analysis.redundancy import SIDES, adapter_sort_key, analyse_state_dict
from avalanche_litelora.analysis.report import (
    format_table,
    load_state_dict_file,
    log_to_tensorboard,
    save_pngs,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m avalanche_litelora.analysis",
        description="Subspace overlap, captured fraction and effective rank of a saved adapter bank.",
    )
    parser.add_argument("file", help="checkpoint ({'model': state_dict, ...}) or a bare state dict file")
    parser.add_argument("--side", choices=SIDES, default="output",
                        help="output: the updates' column spaces (default); input: their row spaces, "
                             "the span of A (where InfLoRA and O-LoRA constrain the adapters)")
    parser.add_argument("--out", default=None, help="folder for the PNG heatmaps (default: none written)")
    parser.add_argument("--tensorboard", default=None, help="TensorBoard log folder to add the figures to")
    parser.add_argument("--step", type=int, default=None,
                        help="TensorBoard step (default: index of the newest adapter)")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow a full unpickle (only for files you trust)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        state_dict = load_state_dict_file(args.file, trust=args.trust_checkpoint)
        report = analyse_state_dict(state_dict, side=args.side)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(report))
    if args.out:
        for path in save_pngs(report, args.out):
            print(f"wrote {path}")
    if args.tensorboard:
        step = args.step
        if step is None:
            step = max((adapter_sort_key(a)[0] for a in report.adapters), default=0)
        log_to_tensorboard(report, args.tensorboard, step)
        print(f"logged to TensorBoard in {args.tensorboard} at step {step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
