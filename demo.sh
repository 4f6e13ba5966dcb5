#!/usr/bin/env bash
# The demo behind `make demo`: train a model, replay the test soundscapes, score them, show detections.
# Uses ../shared/bench206 (real bird recordings) when present, else a small SYNTHETIC corpus made here.
set -euo pipefail
birdd=${1:-.venv/bin/birdd}
data=${2:-../shared/bench206}
out=${3:-out}
mkdir -p "$out"

if [ -d "$data/train_audio" ]; then
    echo "== data: $data (real bird recordings)"
else
    echo "== $data not found: generating a SYNTHETIC corpus (made-up chirps, not birds) in $out/synthetic"
    data=$out/synthetic
    "$birdd" synth "$data"
fi

echo "== training (birdd train)"
"$birdd" train "$data" -o "$out/model" --no-progress
"$birdd" info "$out/model"

echo "== scoring the test soundscapes (birdd replay)"
"$birdd" replay "$data/test_soundscapes" -m "$out/model" -o "$out/submission.csv"
"$birdd" replay "$data/test_soundscapes" -m "$out/model" -o "$out/detections.csv" --format detections --min-conf 0.5

echo "== score (birdd eval)"
"$birdd" eval "$out/submission.csv" "$data/test_soundscapes_labels.csv"

echo "== a few detections ($out/detections.csv)"
head -n 8 "$out/detections.csv" | column -s, -t
