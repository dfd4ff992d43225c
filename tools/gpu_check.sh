#!/usr/bin/env bash
# One GPU, under 10 minutes: a short slice of the paper configuration on ViT-B/16.
#
#   bash tools/gpu_check.sh                  # from the repository root
#   DATA_ROOT=/data WEIGHTS=/ckpt/vit_b16_in21k.safetensors bash tools/gpu_check.sh
#
# Two experiences of Split ImageNet-R (the real folder under $DATA_ROOT if it is there,
# otherwise a synthetic one in the official layout written first), LiteLoRA and SD-LoRA,
# bf16 autocast, 8 loader workers; ImageNet-21k weights from $WEIGHTS or the Hugging Face
# cache, else a random ViT-B/16. Prints training throughput, step time, peak GPU memory and
# merged-inference throughput (results.md's "Cost" table). With several GPUs it also runs
# the same slice under torchrun (DDP on NCCL).
set -euo pipefail

if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
OUT=${OUT:-results/gpu_check}
DATA_ROOT=${DATA_ROOT:-$OUT/data}
EPOCHS=${EPOCHS:-3}
LIMIT_S=${LIMIT_S:-540}

echo "== hardware"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi not found"
"$PYTHON" - <<'EOF'
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, devices {torch.cuda.device_count()}",
      f"bf16 {torch.cuda.is_available() and torch.cuda.is_bf16_supported()}")
if not torch.cuda.is_available():
    raise SystemExit("no CUDA device: this check needs a GPU")
EOF

data=()
if [ ! -d "$DATA_ROOT/imagenet-r" ]; then
    data=(--synthetic --synthetic-images-per-class 100)   # 80 train / 20 test images per class
    echo "== no $DATA_ROOT/imagenet-r: writing a synthetic ImageNet-R folder there"
fi
weights=()
if [ -n "${WEIGHTS:-}" ]; then
    weights=(--checkpoint "$WEIGHTS")
elif ! "$PYTHON" -c "from benchmarks.paper import cached_weights; import sys; sys.exit(0 if cached_weights('vit_base_patch16_224.augreg_in21k') else 1)"; then
    weights=(--random-init)
    echo "== no ImageNet-21k weights in the Hugging Face cache: random ViT-B/16 (cost only, not accuracy)"
fi

slice=(--paper imagenet_r --data-root "$DATA_ROOT" "${data[@]}" "${weights[@]}" --experiences 2
       --epochs "$EPOCHS" --seeds 1993 --strategies litelora sdlora --throughput-samples 512 --workers 8)

echo "== one GPU: ${slice[*]}"
start=$(date +%s)
timeout "$LIMIT_S" "$PYTHON" -m benchmarks.run "${slice[@]}" --out "$OUT/one_gpu" | sed -n '/^### Against/,$p'
echo "== one GPU took $(( $(date +%s) - start )) s"

gpus=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())")
if [ "$gpus" -gt 1 ]; then
    echo "== $gpus GPUs under torchrun (DDP, NCCL)"
    timeout "$LIMIT_S" "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$gpus" \
        -m benchmarks.run "${slice[@]}" --out "$OUT/ddp" | sed -n '/^### Cost/,/^### Harness/p'
fi
