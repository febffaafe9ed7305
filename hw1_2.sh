#!/usr/bin/env bash
# Course contract: bash hw1_2.sh IMG_DIR OUT_DIR
# For every xxxx.jpg (or xxxx_sat.jpg) in IMG_DIR writes OUT_DIR/xxxx.png, an RGB mask in the
# course's colour code at the image's full resolution. The model is $VISLAB_P2_CKPT, by
# default the ensemble's folder of `vislab train configs/p2_ensemble.yaml --out
# runs/p2_ensemble` (runs of the EfficientNet-Lite0 FPN fine-tuned from ImageNet, the best on
# 2 CPU cores), or one checkpoint (runs/p2_lite/checkpoints/best.ckpt of configs/p2_lite.yaml).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/scripts/course_predict.sh" "bash hw1_2.sh IMG_DIR OUT_DIR" \
  VISLAB_P2_CKPT p2_ensemble "${VISLAB_P2_CKPT:-$here/runs/p2_ensemble}" "$@"
