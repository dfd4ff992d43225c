"""Time one LiteLoRA training step of ViT-B/16 (forward + backward, rank-10 q/v LoRA, SGD).

    python tools/vit_b16_step_time.py --batch 16 [--device cuda] [--bf16] [--repeats 3]

The backbone is randomly initialised (the cost does not depend on the weights); the
candidate adapter, its magnitudes and the head train, as in a magnitude epoch of
the paper's configuration. Prints the median of ``--repeats`` timed steps after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import timm
import torch

from avalanche_litelora.lora.model import LoRAClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = LoRAClassifier(timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0), rank=10)
    model.open_candidate()
    model.magnitude_phase(train_past_magnitudes=True)
    model.to(device).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    x = torch.randn(args.batch, 3, 224, 224, device=device)
    with torch.no_grad():
        classes = model(x[:1]).shape[1]  # the head's current width; the cost is the backbone's
    y = torch.randint(0, classes, (args.batch,), device=device)

    def step() -> float:
        start = time.perf_counter()
        with torch.autocast(device.type, torch.bfloat16, enabled=args.bf16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    step()  # warm-up
    times = [step() for _ in range(args.repeats)]
    median = statistics.median(times)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"ViT-B/16 + rank-10 q/v LoRA, batch {args.batch}, {device}, {'bf16' if args.bf16 else 'fp32'}, "
          f"{torch.get_num_threads()} threads: median step {median:.2f} s ({args.batch / median:.2f} img/s; "
          f"steps {', '.join(f'{t:.2f}' for t in times)} s; load average {load:.1f})")


if __name__ == "__main__":
    main()
