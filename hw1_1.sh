#!/usr/bin/env bash
# Course contract: bash hw1_1.sh IMG_DIR OUT_CSV
# Predicts every image in IMG_DIR and writes OUT_CSV (header filename,label; sorted base names;
# integer labels), creating OUT_CSV's folder if needed. The checkpoint is $VISLAB_P1_CKPT,
# by default the best checkpoint of `vislab train configs/p1_model_a.yaml`.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: bash hw1_1.sh IMG_DIR OUT_CSV" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ckpt="${VISLAB_P1_CKPT:-$here/runs/p1_model_a/checkpoints/best.ckpt}"
py="$here/.venv/bin/python"
[ -x "$py" ] || py=python3
export MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824
exec "$py" -m vislab predict --ckpt "$ckpt" --images "$1" --out "$2"
