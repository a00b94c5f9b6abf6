#!/usr/bin/env bash
# The GPU check: one script, under 8 minutes on one GPU (an H100/H200 class device), one results file.
#
#   bash benchmarks/gpu_check.sh                      # on the GPU machine, from the repository root
#   GPU_CHECK_DEVICE=cpu bash benchmarks/gpu_check.sh # a 1-2 minute dry run of every step on the CPU (tiny sizes)
#
# Steps (each with its own time limit; a failed step is recorded and the next one runs):
#   1. train_bench: 384 px, bf16, channels_last, batch 128: resnet18-hag and vit-tiny-hag, gr_mode off / gr / paper
#   2. the same step with torch.compile (resnet18-hag)
#   3. a 2-minute shard-fed training run: images/s and the fraction of time waiting on data (device_augment and
#      device_decode on: nvJPEG), from benchmarks/data_wait.py
#   4. the nvJPEG decode test (tests/load/test_decode.py, the CUDA case)
#   5. a 1-GPU NCCL DDP smoke run: torchrun --nproc_per_node 1 -m polypbench train (device cuda)
#   6. the released FSG-R18 (fsg-r18-loc-paper: masked frame + MiDaS depth) trained 2 epochs with random MiDaS and
#      ResNet weights, depth online and then from shards (`materialize --depth-weights`): images/s of epoch 1
# Results: $OUT/gpu_check.md (or ./gpu_check.md without $OUT): copy the numbers into docs/performance.md.
# Needs python3 with torch, torchvision, timm, pyarrow, pandas, scikit-learn, pillow, pyyaml, click, tqdm and jinja2
# (the GPU machines here have them) plus defusedxml: set WHEELS=dir to install missing wheels from a folder.
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
PY="${PYTHON:-python3}"
DEST="${OUT:-$PWD}"
mkdir -p "$DEST"
RESULTS="$DEST/gpu_check.md"
WORK="${GPU_CHECK_DIR:-/tmp/pb_gpu_check}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 POLYPBENCH_PROGRESS_SECONDS=15

if [ -n "${WHEELS:-}" ]; then "$PY" -m pip install -q --no-index --find-links "$WHEELS" defusedxml || true; fi

if [ "$DEVICE" = cuda ]; then
  RES=384; BATCH=128; STEPS=20; SECONDS_RUN=120; WORKERS=12; FPP=24; COMPILE_STEPS=10
else
  RES=64; BATCH=8; STEPS=2; SECONDS_RUN=10; WORKERS=2; FPP=2; COMPILE_STEPS=1
fi

{
  echo "# polypbench GPU check ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo
  echo "device: $DEVICE; $("$PY" -c 'import torch, platform; print(f"torch {torch.__version__}, " + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or platform.machine()))' 2>&1)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  echo
} >"$RESULTS"

step() {  # step TITLE SECONDS COMMAND...: run one step under a time limit, its output into the results file
  local title="$1" limit="$2"; shift 2
  local start=$SECONDS
  { echo "## $title"; echo; echo '```'; } >>"$RESULTS"
  timeout --kill-after=10 "$limit" "$@" >>"$RESULTS" 2>&1
  local rc=$?
  { echo '```'; echo; echo "exit $rc, $((SECONDS - start)) s"; echo; } >>"$RESULTS"
  echo "[gpu_check] $title: exit $rc in $((SECONDS - start)) s"
}

BENCH=(benchmarks/train_bench.py --device "$DEVICE" --res "$RES" --batch "$BATCH" --steps "$STEPS" --loader-batches 0)
[ "$DEVICE" = cuda ] && BENCH+=(--bf16 --channels-last)
step "1. GR step cost: train_bench at $RES px, batch $BATCH" 150 "$PY" "${BENCH[@]}"
step "2. torch.compile on (resnet18-hag)" 120 "$PY" "${BENCH[@]}" --models resnet18-hag --modes off gr \
  --compile --warmup 3 --steps "$COMPILE_STEPS"
step "3. shard-fed training: time waiting on data" $((SECONDS_RUN + 150)) "$PY" benchmarks/data_wait.py \
  --device "$DEVICE" --size "$RES" --batch "$BATCH" --workers "$WORKERS" --frames-per-polyp "$FPP" \
  --seconds "$SECONDS_RUN" --dir "$WORK/data" $([ "$DEVICE" = cuda ] && echo --bf16 --channels-last || echo --no-device-decode) \
  --json "$DEST/data_wait.json"
step "4. nvJPEG decode test" 60 "$PY" -m pytest -q -p no:cacheprovider tests/load/test_decode.py -k gpu -rs
step "5. 1-GPU DDP smoke run (torchrun, $([ "$DEVICE" = cuda ] && echo NCCL || echo gloo))" 120 bash -c "
  rm -rf '$WORK/ddp' && '$PY' -m torch.distributed.run --standalone --nproc_per_node 1 -m polypbench train \
    --config demo --manifest '$WORK/data/prepared' --set device=$DEVICE --set epochs=1 --set img_size=$RES \
    --set num_workers=2 --out '$WORK/ddp' && ls '$WORK/ddp'"
fsg_run() {  # fsg_run online|shards: train fsg-r18-loc-paper 2 epochs, print epoch 1's images/s (not validated)
  local depth="$1" data="$WORK/data/prepared" run="$WORK/fsg-$1"
  if [ "$depth" = shards ]; then
    "$PY" -m polypbench materialize "$data" --size "$RES" --depth-weights random || return 1
  fi
  rm -rf "$run"
  "$PY" -m polypbench train --config fsg-r18-loc-paper --manifest "$data" --out "$run" --set "device=$DEVICE" \
    --set weights=none --set depth_weights=random --set "depth=$depth" --set "img_size=$RES" \
    --set "batch_size=$((BATCH / 4))" --set epochs=2 --set val_every=2 --set frame_sampler=replacement \
    --set "frames_per_polyp_per_epoch=$FPP" --set "num_workers=$WORKERS" >"$run.log" 2>&1 || { tail -20 "$run.log"; return 1; }
  "$PY" -c '
import json, sys
from polypbench.manifest import Manifest
run, fpp, data = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seconds = [json.loads(line) for line in open(run + "/metrics.jsonl")][-1]["seconds"]
frames = Manifest.open(data).frames.query("split == \"train\"")["polyp_id"].nunique() * fpp
print(f"epoch 1: {frames} frames in {seconds:.1f} s = {frames / seconds:.1f} img/s")' "$run" "$FPP" "$data"
}
export -f fsg_run
export PY WORK RES BATCH FPP WORKERS DEVICE
step "6a. fsg-r18-loc-paper (masked frame + MiDaS depth), depth online" 150 bash -c 'fsg_run online'
step "6b. fsg-r18-loc-paper, depth from shards (materialize --depth-weights first)" 240 bash -c 'fsg_run shards'
echo "[gpu_check] results: $RESULTS"
