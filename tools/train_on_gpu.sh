#!/usr/bin/env bash
# One prepared leg of a training campaign on a lent GPU machine: train for a fixed time, stop
# (SIGTERM saves the run), and leave the checkpoint under $OUT to come back.
#
#   tools/train_on_gpu.sh xydeblur   # continue the default-model campaign (issue 15)
#   tools/train_on_gpu.sh dvsr       # DvSR's denoiser over that campaign's network as predictor (issue 17)
#
# Before the device call, here: `python tools/pack_training_data.py` (writes gpu-pack/, git-ignored),
# then call the device tool with carry ["gpu-pack"] and this script as the command; see
# campaign/README.md. Settings by environment: MINUTES (training wall time, default 7, so that a
# 9-minute call ends in time), DEVICE (cuda; cpu for a dry run here), PYTHON (python3: the device
# image's, which has torch), BATCH, CROP, LR, SEED (default: random), and OUT (the device tool sets it).
set -euo pipefail
cd "$(dirname "$0")/.."

WHAT=${1:?"which campaign: xydeblur or dvsr"}
MINUTES=${MINUTES:-7}
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp/train_on_gpu}
DATA=gpu-pack
RUN=$(mktemp -d)/run  # previews and the resume state stay behind: the way back takes 8 files at most
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

# the photos are read recursively: the pack's folders (tools/pack_training_data.py chooses them) are one --sharp
[ -d "$DATA" ] || { echo "error: $DATA is missing: run python tools/pack_training_data.py here and carry" \
                         "gpu-pack" >&2; exit 2; }
SHARP=(--sharp "$DATA")
COMMON=(--device "$DEVICE" --steps 200000 --warmup 200 --val-every 500 --log-every 50 -o "$RUN" -q)

case "$WHAT" in
  xydeblur)
    # the official batch and crop of the design notes (32 x 256 px); the CPU legs used 8 x 192
    COMMAND=(-m deblur finetune --weights campaign/xydeblur-w24b3/model.safetensors "${SHARP[@]}"
             --crop "${CROP:-256}" --batch-size "${BATCH:-32}" --lr "${LR:-4e-4}" --seed "${SEED:-$RANDOM}" "${COMMON[@]}") ;;
  dvsr)
    if [ -f campaign/dvsr-xydeblur/model.safetensors ]; then  # continue the denoiser campaign
      START=(finetune --weights campaign/dvsr-xydeblur/model.safetensors --freeze-predictor)
    else
      START=(train --model dvsr --predictor campaign/xydeblur-w24b3/model.safetensors --config denoiser_width=32)
    fi
    COMMAND=(-m deblur "${START[@]}" "${SHARP[@]}"
             --crop "${CROP:-128}" --batch-size "${BATCH:-64}" --lr "${LR:-3e-4}" --seed "${SEED:-$RANDOM}" "${COMMON[@]}") ;;
  *) echo "error: unknown campaign '$WHAT'; use xydeblur or dvsr" >&2; exit 2 ;;
esac
# Validation: held-out training photos (../shared does not travel); bench/quality.py here is the measure.

echo "training $WHAT on $DEVICE for $MINUTES min: $PYTHON ${COMMAND[*]}"
# SIGTERM is the trainer's "save and stop"; exit 130 is that ending, not a failure
status=0
timeout -s TERM "$(awk "BEGIN {print int($MINUTES * 60)}")" "$PYTHON" "${COMMAND[@]}" || status=$?
case $status in 0|124|130) ;; *) echo "error: training failed (exit $status)" >&2; exit "$status" ;; esac
mkdir -p "$OUT"
cp "$RUN/model.safetensors" "$RUN/config.json" "$OUT/"
[ ! -f "$RUN/log.jsonl" ] || cp "$RUN/log.jsonl" "$OUT/"  # written from step --log-every on
grep -h '"kind": "val"' "$OUT"/log.jsonl 2>/dev/null | tail -3 || true
echo "brought back: $(ls "$OUT")"
