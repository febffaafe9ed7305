#!/usr/bin/env bash
# The GPU check: every recipe of configs/ trained briefly on a slice of the course's data with
# trainer.accelerator=gpu (bf16-mixed, and Model A also 16-mixed), its validation set predicted
# with --device cuda (bf16 autocast), embed and progress on the GPU, the submission folder's
# hw1_1.sh / hw1_2.sh on the GPU, and the augmentation test that compares GPU and CPU draws.
# Writes $OUT/gpu_check.md (img/s, losses, scores, seconds) and the logs; under 6 minutes on
# one H100.
#
# 1. here, once: copy the slice into .gpu_data/ (git-ignored; about 50 MB, under the device
#    tool's 64 MiB):   bash bench/gpu_check.sh prepare ../shared/data
# 2. there: the device tool's run with command "bash bench/gpu_check.sh run" and carry
#    [".gpu_data"]. The device image has torch, Lightning and timm but neither pyspng (its
#    Python 3.12 wheel travels in .gpu_data/wheels) nor the Lite weights packages: the
#    recipes train from random weights (model.kwargs.weights=null), which is what a speed and
#    plumbing check needs.
# 3. the figures go to docs/RESULTS.md ("On a GPU").
#
# GPU_CHECK_ACCELERATOR=cpu GPU_CHECK_DEVICE=cpu runs the same steps on the CPU in fp32 (a dry
# run of the script itself, slow for the large recipes).
set -euo pipefail
cd "$(dirname "$0")/.."
SLICE=.gpu_data

prepare() {
  local data=${1:?give the folder holding dlcv-p1/ and dlcv-p2/}
  rm -rf "$SLICE" && mkdir -p "$SLICE/p1/train_50" "$SLICE/p2/train"
  cp -r "$data/dlcv-p1/val_50" "$data/dlcv-p1/val_gt.csv" "$SLICE/p1/"
  # 150 images of each of the 50 classes (file names {label}_{id}.png)
  for c in $(seq 0 49); do
    find "$data/dlcv-p1/train_50" -name "${c}_*.png" | sort | head -150 \
      | xargs -I{} cp {} "$SLICE/p1/train_50/"
  done
  cp -r "$data/dlcv-p2/validation" "$SLICE/p2/"
  find "$data/dlcv-p2/train" -name "*_sat.jpg" | sort | head -200 | while read -r sat; do
    cp "$sat" "${sat%_sat.jpg}_mask.png" "$SLICE/p2/train/"
  done
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_17_x86_64 -d "$SLICE/wheels" pyspng
  local exclude; exclude=$(git rev-parse --git-path info/exclude)
  mkdir -p "$(dirname "$exclude")"
  grep -qx "/$SLICE/" "$exclude" 2>/dev/null || echo "/$SLICE/" >> "$exclude"
  du -sh "$SLICE"
}

run() {
  local acc=${GPU_CHECK_ACCELERATOR:-gpu} dev=${GPU_CHECK_DEVICE:-cuda}
  local out=${OUT:-/tmp/gpu_check}
  rm -rf "$out/runs" && mkdir -p "$out/runs" "$out/logs"
  python3 -c "import pyspng" 2>/dev/null || python3 -m pip install -q --no-index --no-deps \
    --target /tmp/site "$SLICE"/wheels/*.whl
  export PYTHONPATH=$PWD/src:/tmp/site VISLAB_OFFLINE=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
  local vislab="python3 -m vislab"
  local report=$out/gpu_check.md
  python3 - > "$report" <<'EOF'
import torch
name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
print(f"# GPU check\n\ntorch {torch.__version__}, {name}\n")
print("| run | precision | epochs | train img/s | train loss | val score | seconds |")
print("|---|---|---|---|---|---|---|")
EOF
  local prec recipe problem name sets t0
  for recipe in configs/p1_*.yaml configs/p2_*.yaml configs/p1_model_a.yaml; do
    name=$(basename "$recipe" .yaml)
    problem=${name%%_*}
    prec=bf16-mixed
    if [ "$recipe" = configs/p1_model_a.yaml ] && [ -d "$out/runs/$name" ]; then
      [ "$acc" = cpu ] && continue  # no fp16 on the CPU
      prec=16-mixed name=${name}_fp16  # the second pass: fp16 with gradient scaling
    fi
    [ "$acc" = cpu ] && prec=32-true
    sets=(--set trainer.accelerator="$acc" --set trainer.devices=1 --set trainer.precision="$prec"
          --set trainer.progress_bar=false --epochs 2)
    grep -q "weights:" "$recipe" && sets+=(--set model.kwargs.weights=null)
    t0=$SECONDS
    $vislab train "$recipe" --data "$SLICE/$problem" --out "$out/runs/$name" "${sets[@]}" \
      > "$out/logs/train_$name.log" 2>&1 || { tail -20 "$out/logs/train_$name.log"; exit 1; }
    python3 - "$out/runs/$name/metrics.csv" "$name" "$prec" "$((SECONDS - t0))" >> "$report" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
last = rows[-1]
score = last.get("val_acc") or last.get("val_miou")
print(f"| {sys.argv[2]} | {sys.argv[3]} | {len(rows)} | {last['train_img_per_s']} | "
      f"{float(last['train_loss']):.4f} | {float(score):.4f} | {sys.argv[4]} |")
EOF
  done
  local p1=$out/runs/p1_lite/checkpoints/best.ckpt p2=$out/runs/p2_lite/checkpoints/best.ckpt
  local pp=bf16; [ "$dev" = cpu ] && pp=32
  local n1 n2
  n1=$(find "$SLICE/p1/val_50" -name "*.png" | wc -l)
  n2=$(find "$SLICE/p2/validation" -name "*_sat.jpg" | wc -l)
  {
    echo; echo "| predict --device $dev --precision $pp | images | seconds | score |"
    echo "|---|---|---|---|"
  } >> "$report"
  t0=$SECONDS
  $vislab predict --ckpt "$p1" --images "$SLICE/p1/val_50" --out "$out/p1_pred.csv" \
    --device "$dev" --precision "$pp" > "$out/logs/predict.log" 2>&1
  $vislab evaluate --pred "$out/p1_pred.csv" --gt "$SLICE/p1/val_gt.csv" \
    --json "$out/p1_eval.json" >> "$out/logs/predict.log" 2>&1
  echo "| p1_lite | $n1 | $((SECONDS - t0)) | $(python3 -c "import json; print(json.load(open('$out/p1_eval.json'))['accuracy'])") |" >> "$report"
  t0=$SECONDS
  $vislab predict --ckpt "$p2" --images "$SLICE/p2/validation" --out "$out/p2_masks" \
    --device "$dev" --precision "$pp" >> "$out/logs/predict.log" 2>&1
  $vislab evaluate --pred "$out/p2_masks" --gt "$SLICE/p2/validation" \
    --json "$out/p2_eval.json" >> "$out/logs/predict.log" 2>&1
  echo "| p2_lite | $n2 | $((SECONDS - t0)) | $(python3 -c "import json; print(json.load(open('$out/p2_eval.json'))['miou'])") |" >> "$report"
  $vislab embed "$out/runs/p1_lite" --device "$dev" > "$out/logs/embed.log" 2>&1
  $vislab progress "$out/runs/p2_lite" --device "$dev" > "$out/logs/progress.log" 2>&1
  $vislab submission --p1 "$p1" --p2 "$p2" --out "$out/sub" > "$out/logs/submission.log" 2>&1
  t0=$SECONDS
  bash "$out/sub/hw1_1.sh" "$SLICE/p1/val_50" "$out/sub_p1.csv" >> "$out/logs/submission.log" 2>&1
  bash "$out/sub/hw1_2.sh" "$SLICE/p2/validation" "$out/sub_p2" >> "$out/logs/submission.log" 2>&1
  { echo; echo "submission scripts (test-time augmentation): $((SECONDS - t0)) s for $n1"
    echo "images and $n2 tiles"; } >> "$report"
  python3 -m pytest -q -p no:cacheprovider tests/test_devices.py > "$out/logs/pytest.log" 2>&1 \
    || { tail -20 "$out/logs/pytest.log"; exit 1; }
  { echo; tail -1 "$out/logs/pytest.log"; } >> "$report"
  cat "$report"
}

case "${1:-}" in
  prepare) prepare "${2:-}" ;;
  run) run ;;
  *) echo "usage: bash bench/gpu_check.sh prepare DATA | run" >&2; exit 2 ;;
esac
