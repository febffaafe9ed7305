#!/usr/bin/env bash
# vislab end to end on generated data (no download): 10 classes of 32x32 gratings and 64x64
# land-cover tiles in the course's colour code. Trains Model A and the CPU segmenter briefly,
# predicts, evaluates, embeds, draws the mask progress and writes the report.
set -euo pipefail
out=runs/demo
rm -rf "$out"
python - <<PY
from vislab.data.synthetic import write_p1_layout, write_p2_layout
write_p1_layout("$out/p1_data", num_classes=10, per_class=100)
write_p2_layout("$out/p2_data", n_train=96, n_val=8, size=64)
PY
echo "== Problem 1: train Model A, predict, evaluate, embed"
vislab train configs/p1_model_a.yaml --data "$out/p1_data" --out "$out/model_a" --epochs 6 \
  --set model.num_classes=10
vislab predict --ckpt "$out/model_a/checkpoints/best.ckpt" --images "$out/p1_data/val_50" \
  --out "$out/pred.csv"
vislab evaluate --pred "$out/pred.csv" --gt "$out/p1_data/val_gt.csv" --out "$out/eval"
vislab embed "$out/model_a"
echo "== Problem 2: train the CPU segmenter, predict, evaluate, progress"
vislab train configs/p2_cpu.yaml --data "$out/p2_data" --out "$out/seg" --epochs 8 \
  --set data.image_size=64 --set data.batch_size=4 --set model.kwargs.bn_momentum=0.1
vislab predict --ckpt "$out/seg/checkpoints/best.ckpt" --images "$out/p2_data/validation" \
  --out "$out/masks"
vislab evaluate --gt "$out/p2_data/validation" --pred "$out/masks" --json "$out/masks.json"
vislab progress "$out/seg" --tiles 0000 0001 0002
vislab report "$out/model_a" "$out/seg" --out "$out/report"
echo "demo done: the report is $out/report/report.html"
