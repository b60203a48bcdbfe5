#!/usr/bin/env bash
# The GPU runs the default model and configs/large.yaml are waiting for, most valuable first; each step is its own
# short command and resumes where it stopped:
#
#   bash scripts/gpu_session.sh OUT                      # every step
#   STEPS=match bash scripts/gpu_session.sh OUT          # then STEPS=default, then STEPS=large
#   SMOKE=1 bash scripts/gpu_session.sh OUT              # the tiny U-Net, seconds on a CPU (tests/test_recipe.py)
#
#   match    benchmarks/loss_match.py: the fast loop (torch_compile=reduce-overhead channels_last=true) against the
#            plain loop over the default recipe's first 500 updates, with the img/s of each -> OUT/loss_match.json
#   default  scripts/recipe.py on configs/fashion_mnist.yaml (40 epochs) within MINUTES (default 8) of training, with
#            the fast keys only if `match` found them to match: train, guidance sweep (judge metrics), export,
#            evaluate without Inception -> OUT/default/model
#   large    the same for configs/large.yaml with the same MINUTES: the bigger U-Net at equal wall-clock -> OUT/large
#
# Inception FID on any machine afterwards: fashion-ddpm evaluate --model OUT/default/model --num-per-class 100.
# The Fashion-MNIST IDX files come from the usual search ($FASHION_MNIST_DIR, the Debian package, the data folder).
set -euo pipefail
OUT=${1:?usage: bash scripts/gpu_session.sh OUT (STEPS="match default large", MINUTES=8, SMOKE=1)}
STEPS=${STEPS:-match default large}
MINUTES=${MINUTES:-8}
cd "$(dirname "$0")/.."
for step in $STEPS; do
  case $step in match|default|large) ;; *) echo "error: STEPS has $step; accepted: match default large" >&2; exit 2 ;; esac
done
mkdir -p "$OUT"
DEVICE=$(python -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
FAST="torch_compile=reduce-overhead channels_last=true"
if [ -n "${SMOKE:-}" ]; then  # the tiny U-Net and a few updates: every step's code path, without minutes of compiling
  FAST="channels_last=true"
  MATCH=(--smoke --set $FAST)
  SHRINK=("unet={block_out_channels: [8, 16, 16], norm_num_groups: 4, layers_per_block: 1, attention_head_dim: 8}"
          max_train_images=256 train_batch_size=16 max_train_steps=6 budget_probe_steps=4 checkpointing_steps=3
          sample_every_steps=0 mixed_precision=no sample_steps=4)
  SWEEP=(--num-per-class 2 --guidance 1,2 --min-accuracy 0)
else
  MATCH=(--config configs/fashion_mnist.yaml --updates 500 --set $FAST)
  SHRINK=()
  SWEEP=(--num-per-class 100)
fi

for step in $STEPS; do
  echo "[$(date -u +%H:%M:%S)] step $step on $DEVICE"
  case $step in
    match)
      [ -f "$OUT/loss_match.json" ] || python -m benchmarks.loss_match "${MATCH[@]}" --out "$OUT" ;;
    default|large)
      config=configs/fashion_mnist.yaml; [ "$step" = large ] && config=configs/large.yaml
      keys=()
      if [ -f "$OUT/loss_match.json" ] && python -c "import json, sys; sys.exit(not json.load(open('$OUT/loss_match.json'))['matched'])"; then
        keys=($FAST)
      fi
      echo "fast loop keys: ${keys[*]:-none (no matching loss_match.json)}"
      python scripts/recipe.py --config "$config" --out "$OUT/$step" --max-train-minutes "$MINUTES" --device "$DEVICE" \
        --no-inception "${SWEEP[@]}" report_to=none "${SHRINK[@]}" "${keys[@]}" ;;
  esac
done
echo "[$(date -u +%H:%M:%S)] done: $STEPS"
