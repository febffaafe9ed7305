#!/usr/bin/env bash
# Course contract: bash hw1_2.sh IMG_DIR OUT_DIR
# For every xxxx.jpg (or xxxx_sat.jpg) in IMG_DIR writes OUT_DIR/xxxx.png, an RGB mask in the
# course's colour code at the image's full resolution. The checkpoint is $VISLAB_P2_CKPT, by
# default the best checkpoint of `vislab train configs/p2_cpu.yaml`.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: bash hw1_2.sh IMG_DIR OUT_DIR" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ckpt="${VISLAB_P2_CKPT:-$here/runs/p2_cpu/checkpoints/best.ckpt}"
py="$here/.venv/bin/python"
[ -x "$py" ] || py=python3
export MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824
exec "$py" -m vislab predict --ckpt "$ckpt" --images "$1" --out "$2"
