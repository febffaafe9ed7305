#!/usr/bin/env bash
# The quickest meaningful end-to-end classification run, on generated data:
# make data -> train Model A -> predict -> evaluate. About a minute on 2 CPU cores.
set -euo pipefail
out=runs/demo
rm -rf "$out"
python -c "from vislab.data.synthetic import write_p1_layout; write_p1_layout('$out/data', num_classes=10, per_class=100)"
vislab train configs/p1_model_a.yaml --data "$out/data" --out "$out/model_a" --epochs 5 \
  --set model.num_classes=10
vislab predict --ckpt "$out/model_a/checkpoints/best.ckpt" --images "$out/data/val_50" \
  --out "$out/pred.csv"
vislab evaluate --pred "$out/pred.csv" --gt "$out/data/val_gt.csv" --out "$out/eval"
echo "demo done: run folder $out/model_a, predictions $out/pred.csv, scores $out/eval/metrics.json"
