#!/usr/bin/env bash
# Course contract: bash hw1_1.sh IMG_DIR OUT_CSV
# Predicts every image in IMG_DIR and writes OUT_CSV (header filename,label; sorted base names;
# integer labels), creating OUT_CSV's folder if needed. The model is $VISLAB_P1_CKPT, by
# default the ensemble's folder of `vislab train configs/p1_ensemble.yaml --out
# runs/p1_ensemble` (a Lite1 and a Lite0 run fine-tuned from ImageNet, the best on 2 CPU
# cores), or one checkpoint (runs/p1_lite/checkpoints/best.ckpt of configs/p1_lite.yaml).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/scripts/course_predict.sh" "bash hw1_1.sh IMG_DIR OUT_CSV" \
  VISLAB_P1_CKPT p1_ensemble "${VISLAB_P1_CKPT:-$here/runs/p1_ensemble}" "$@"
