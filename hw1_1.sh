#!/usr/bin/env bash
# Course contract: bash hw1_1.sh IMG_DIR OUT_CSV
# Predicts every image in IMG_DIR and writes OUT_CSV (header filename,label; sorted base names;
# integer labels), creating OUT_CSV's folder if needed. The checkpoint is $VISLAB_P1_CKPT,
# by default the best checkpoint of `vislab train configs/p1_lite.yaml --out runs/p1_lite`
# (EfficientNet-Lite0 fine-tuned from ImageNet, the CPU recipe of one model), or an
# ensemble's folder (runs/p1_ensemble of configs/p1_ensemble.yaml, the best on 2 CPU cores).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/scripts/course_predict.sh" "bash hw1_1.sh IMG_DIR OUT_CSV" \
  "${VISLAB_P1_CKPT:-$here/runs/p1_lite/checkpoints/best.ckpt}" "$@"
