#!/usr/bin/env bash
# `make gpu-check`: everything shufflebench does on a CUDA GPU, in one run of about 7 minutes that needs no network.
#
# It uses the Python given as PYTHON (default python3) as it is, with this checkout on PYTHONPATH: no virtual
# environment and no install, so it runs on a machine that already has torch with CUDA and cannot download anything.
# Steps, each with a time cap so the whole check stays under 10 minutes whatever happens. A capped sweep keeps what it
# measured: cells cut short get rows flagged "interrupted after k of n processes", which a rerun measures in full.
# On the first H200 a freshly executed worker took about 4 s (starting Python, torch and CUDA, then 0.5 s of timing);
# workers are now forked from a parent that imported torch once per round (shufflebench.launcher), so a run costs CUDA's
# start in the child, cuDNN's autotuning and the timing: about 1.5 s expected, so the tables (159 worker runs) take
# about 4 minutes of their 5.3 and the networks (18 runs) about 1 of their 2. The log says how long the runs took.
#   1. the device: nvidia-smi, torch's view of the GPU, shufflebench's fingerprint
#   2. the GPU tests (pytest -m gpu)
#   3. ShuffleNet V2 Tables 1-4 on the GPU (x1, x2, x4), CUDA-graph replay on two G3 cells (configs/gpu-check/tables.yaml)
#   4. the Table 8 networks at ~140 MFLOPs, float32 and float16 (configs/gpu-check/networks.yaml)
#   5. Figure 2's op-category breakdown, on the GPU too
#   6. the report, and its verdicts per guideline and settings compared (CUDA graph, float16) in the log
# Everything it produced lands in one folder, OUT (default gpu-check/): gpu-check.log and gpu-check.tar.gz, which
# holds results/<device-id>/ and reports/<device-id>/ to unpack at the root of a checkout and commit.
# ort-cuda cells need onnxruntime-gpu; where only the CPU build is installed they are recorded as skipped rows.
# On a machine with no CUDA GPU it says so and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
OUT_DIR=${OUT:-gpu-check}
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu-check.log"

if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; then
    echo "gpu-check: no CUDA GPU is visible to $PYTHON's torch on this machine; nothing to check" | tee "$LOG"
    exit 0
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
SB=("$PYTHON" -m shufflebench.cli)
failed=()

step() {  # step NAME SECONDS COMMAND...: run COMMAND for at most SECONDS, log its exit status and duration
    local name=$1 cap=$2 started=$SECONDS rc
    shift 2
    echo "== $name (at most ${cap} s)"
    timeout -s INT -k 15 "$cap" "$@"
    rc=$?
    echo "== $name: exit status $rc after $((SECONDS - started)) s"
    [ "$rc" -eq 0 ] || failed+=("$name")
}

{
    echo "gpu-check on $(hostname) at $(date -u +%FT%TZ)"
    # The fingerprint without --probe: every sweep below probes its own backends (probing all of them took over 30 s).
    step device 20 bash -c 'nvidia-smi; "$0" -c "import torch; print(\"torch\", torch.__version__, \"CUDA\", torch.version.cuda, torch.cuda.get_device_name())"; "$0" -m shufflebench.cli device' "$PYTHON"
    step tests 45 "$PYTHON" -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu.py
    step tables 320 "${SB[@]}" run configs/gpu-check/tables.yaml --results "$WORK/results"
    step networks 120 "${SB[@]}" run configs/gpu-check/networks.yaml --results "$WORK/results"
    step breakdown 40 "${SB[@]}" breakdown --results "$WORK/results" --runs 10
    for folder in "$WORK"/results/*/; do
        id=$(basename "$folder")
        step report 25 "${SB[@]}" report "$folder" --out "$WORK/reports/$id"
        index="$WORK/reports/$id/index.md"
        if [ -f "$index" ]; then  # the report's answers, in the log: verdicts per guideline, then settings compared
            echo "== summary of $id"
            sed -n '/^## ShuffleNet V2 Tables 1-4/,/^\*\*Table/p' "$index" | grep '^|'
            sed -n '/^## Settings compared/,/^## [^S]/p' "$index" | grep '^|'
        fi
    done
    echo "== steps that did not finish cleanly: ${failed[*]:-none}"
} 2>&1 | tee "$LOG"

tar -czf "$OUT_DIR/gpu-check.tar.gz" -C "$WORK" --exclude onnx --exclude '*.lock' results reports 2>/dev/null ||
    tar -czf "$OUT_DIR/gpu-check.tar.gz" -C "$WORK" --exclude onnx results
echo "gpu-check: wrote $LOG and $OUT_DIR/gpu-check.tar.gz (unpack at the checkout's root: tar -xzf ... )"
