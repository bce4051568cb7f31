#!/usr/bin/env bash
# The GPU checks, in one go, on a lent GPU machine (its own Python with torch + sentence-transformers; no
# network, no prefmill install). Needs a local copy of the embedding model (the offline package is not there):
#   PREFMILL_EMBED_MODEL=<model folder> [OUT=<dir>] bash bench/device_check.sh [reference.npy]
# Logs and JSON results go to $OUT. Each step is bounded so one hang cannot eat the machine's time.
set -uo pipefail
: "${PREFMILL_EMBED_MODEL:?point PREFMILL_EMBED_MODEL at a local sentence-transformers folder}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false DO_NOT_TRACK=1
OUT=${OUT:-/tmp/prefmill-device}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
ref=${1:-}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch, sentence_transformers, transformers; print('torch', torch.__version__, 'st', \
sentence_transformers.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"

timeout 300 $PY -m pytest -q -p no:cacheprovider tests/curation/test_embed_gpu.py tests/curation/test_gpu_feed.py \
  2>&1 | tee "$OUT/gpu_tests.log"
for bs in 128 512; do
  timeout 300 $PY -m bench.embed --device cuda --n 6492 --batch-size $bs --repeats 3 2>&1 | tee -a "$OUT/bench_embed.log"
done
timeout 300 $PY -m bench.embed_gpu_profile --repeats 2 2>&1 | tee "$OUT/bench_embed_gpu_profile.log"
timeout 400 $PY -m bench.embed_device --batch-size 128 ${ref:+--reference "$ref"} 2>&1 | tee "$OUT/bench_embed_device.log"
