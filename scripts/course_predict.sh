#!/usr/bin/env bash
# Shared by hw1_1.sh and hw1_2.sh: course_predict.sh USAGE VARIABLE RECIPE MODEL IN OUT
# (MODEL: $VARIABLE's checkpoint or ensemble's folder, by default that of RECIPE under runs/)
# Runs `vislab predict --tta` (image + mirror for classes, 8 flips/rotations for masks) with
# the repository's .venv (or python3).
set -euo pipefail
usage=$1
variable=$2
recipe=$3
shift 3
if [ $# -ne 3 ]; then
  echo "usage: $usage" >&2
  exit 2
fi
if [ ! -e "$1" ]; then
  read -r _ name _ <<<"$usage"
  echo "$name: no model at $1: train it (vislab train configs/$recipe.yaml" \
    "--data DATA --out runs/$recipe) or set $variable to a checkpoint or an ensemble's folder" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$here/.venv/bin/python"
[ -x "$py" ] || py=python3
exec "$py" -m vislab predict --ckpt="$1" --images="$2" --out="$3" --tta  # a name may start with "-"
